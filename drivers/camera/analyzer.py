"""One camera's analysis of a frame: motion on a small grey copy gates the person detector, then events.

The same code runs in the live worker and in `commune-agent camera analyze VIDEO`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from drivers.camera.config import CameraConfig
from drivers.camera.events import EventTracker, Output
from drivers.camera.motion import MotionDetector
from drivers.camera.person import PersonConfirmer, PersonDetector, make_person_detector, merge_regions


class Analyzer:
    """Feed it BGR frames at detect fps; it returns event phases and snapshots."""

    def __init__(self, cam: CameraConfig, tz: ZoneInfo, detector: PersonDetector | None = None) -> None:
        self.cam = cam
        self.tz = tz
        self.detector = detector if detector is not None or not cam.person.enabled else make_person_detector(cam.person)
        self.confirmer = PersonConfirmer(cam.person.confirm_hits, cam.person.confirm_window)
        self.tracker = EventTracker(cam)
        self.motion: MotionDetector | None = None
        self.frame_size: tuple[int, int] = (0, 0)
        self.last_person_call = float("-inf")
        self.person_calls = 0
        self.frames = 0

    def small_grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if (w, h) != self.frame_size:
            dw = min(self.cam.detect_width, w)
            dh = max(2, round(h * dw / w))
            self.frame_size = (w, h)
            self.motion = MotionDetector(self.cam.motion, dw, dh)
        assert self.motion is not None
        small = cv2.resize(frame, self.motion.size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)

    @property
    def recalibrations(self) -> int:
        return self.motion.recalibrations if self.motion else 0

    def process(self, frame: np.ndarray, mono: float, wall: float) -> list[Output]:
        self.frames += 1
        grey = self.small_grey(frame)
        assert self.motion is not None
        result = self.motion.detect(grey)
        armed = self.cam.is_armed(dt.datetime.fromtimestamp(wall, self.tz))
        fx = self.frame_size[0] / self.motion.size[0]
        fy = self.frame_size[1] / self.motion.size[1]
        boxes = [(int(x * fx), int(y * fy), int(w * fx), int(h * fy)) for x, y, w, h in result.boxes]
        people: list[tuple[tuple[int, int, int, int], float]] = []
        confirmed = False
        if (armed and boxes and self.detector is not None
                and mono - self.last_person_call >= self.cam.person.interval_s):
            self.last_person_call = mono
            self.person_calls += 1
            regions = merge_regions(boxes, *self.frame_size)
            people = [(d.box, d.score) for d in self.detector.detect(frame, regions)]
            confirmed = self.confirmer.add(bool(people))
        elif not boxes and mono - self.last_person_call >= self.cam.person.interval_s:
            self.last_person_call = mono
            self.confirmer.add(False)  # a still scene counts as a miss so stale hits age out
        return self.tracker.step(frame, mono, wall, armed, boxes, result.changed * 100.0, people, confirmed)

    def flush(self, mono: float, wall: float) -> list[Output]:
        return self.tracker.flush(wall, mono)
