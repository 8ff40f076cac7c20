"""One camera's analysis of a frame: motion on a small grey copy gates the detector, then tracks and events.

The same code runs in the live worker and in `commune-agent camera analyze VIDEO`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from drivers.camera.detectors import Box, Confirmer, Detection, Detector, kind_of, make_detector, merge_regions
from drivers.camera.events import CountOut, EventTracker, Output, Seen
from drivers.camera.motion import MotionDetector
from drivers.camera.shared_detector import NoAnswer
from drivers.camera.traffic import Tracker, foot, inside

if TYPE_CHECKING:  # only types: the worker process never imports pydantic (see plain.py)
    from drivers.camera.config import CameraConfig


def overlaps(box: Box, others: list[Box]) -> bool:
    x, y, w, h = box
    return any(x < ox + ow and ox < x + w and y < oy + oh and oy < y + h for ox, oy, ow, oh in others)


class Analyzer:
    """Feed it BGR frames at detect fps; it returns event phases, snapshots and line crossings."""

    def __init__(self, cam: CameraConfig, tz: ZoneInfo, detector: Detector | None = None) -> None:
        self.cam = cam
        self.tz = tz
        self.warning: str | None = None  # why the configured detector is not the one running
        if detector is None and cam.detect.enabled:
            detector, self.warning = make_detector(cam.detect)
        self.detector = detector
        d = cam.detect
        self.confirmers = {k: Confirmer(d.confirm_hits, d.confirm_window) for k in ("person", "vehicle")}
        self.events = EventTracker(cam)
        self.motion: MotionDetector | None = None
        self.tracker: Tracker | None = None
        self.zones: list[list[tuple[float, float]]] = []
        self.frame_size: tuple[int, int] = (0, 0)
        self.last_call = float("-inf")
        self.last_miss = float("-inf")  # a still scene ages the confirmers on its own clock, not the calls'
        self.detector_calls = 0
        self.frames = 0
        self.slowdown = 1.0  # stretches the detector intervals while a shared detector is busy (set by the worker)

    def _resize(self, w: int, h: int) -> None:
        dw = min(self.cam.detect_width, w)
        dh = max(2, round(h * dw / w))
        self.frame_size = (w, h)
        self.motion = MotionDetector(self.cam.motion, dw, dh)
        self.tracker = Tracker(self.cam.traffic, w, h)
        self.zones = [[(x * w, y * h) for x, y in z] for z in self.cam.detect.zones]

    def small_grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if (w, h) != self.frame_size:
            self._resize(w, h)
        assert self.motion is not None
        small = cv2.resize(frame, self.motion.size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)

    @property
    def recalibrations(self) -> int:
        return self.motion.recalibrations if self.motion else 0

    def _in_zones(self, dets: list[Detection]) -> list[Detection]:
        if not self.zones:
            return dets
        return [d for d in dets if any(inside(foot(d.box), z) for z in self.zones)]

    def _seen(self, dets: list[Detection], moving: list[Box], called: bool) -> dict[str, Seen]:
        """Per kind: what was found on a moving blob, and whether enough recent calls agree."""
        out: dict[str, Seen] = {}
        if not called:
            return out
        name = self.detector.name if self.detector else "-"
        for kind, confirmer in self.confirmers.items():
            mine = [d for d in dets if kind_of(d.label) == kind and overlaps(d.box, moving)]
            confirmed = confirmer.add(bool(mine))
            if not mine:
                continue
            best = max(mine, key=lambda d: d.score)
            reason = (f"{name} saw {best.label} {best.score:.2f} (min {self.cam.detect.score_for(best.label):g}) on a "
                      f"moving blob, in {sum(confirmer.recent)} of the last {len(confirmer.recent)} calls "
                      f"(need {confirmer.hits})")
            out[kind] = Seen([d.box for d in mine], best.score, sorted({d.label for d in mine}), confirmed, reason)
        return out

    def _all_confirmed(self) -> bool:
        """Every kind reported here has an event kept open by the ongoing motion, and nothing needs tracks: more
        calls would only refine boxes and snapshots."""
        traffic = self.cam.traffic
        if traffic.lines or traffic.stop_zones:
            return False
        motion = self.events.open.get("motion")
        if motion is None:
            return False
        kinds = {kind_of(c) for c in self.cam.detect.classes}
        return all((act := self.events.open.get(k)) is not None and act.linked == motion.id for k in kinds)

    def _hold_s(self) -> float:
        """How long a standing object may go unseen: the still period (the call comes on the next analysed frame
        after it, hence the second) stretched as calls are, while a busy shared detector sheds them."""
        return self.cam.detect.still_interval_s * self.slowdown + 1.0

    def process(self, frame: np.ndarray, mono: float, wall: float) -> list[Output]:
        self.frames += 1
        grey = self.small_grey(frame)
        assert self.motion is not None and self.tracker is not None
        result = self.motion.detect(grey)
        armed = self.cam.is_armed(dt.datetime.fromtimestamp(wall, self.tz))
        fx = self.frame_size[0] / self.motion.size[0]
        fy = self.frame_size[1] / self.motion.size[1]
        boxes = [(int(x * fx), int(y * fy), int(w * fx), int(h * fy)) for x, y, w, h in result.boxes]
        d = self.cam.detect
        since = mono - self.last_call
        interval = max(d.interval_s, d.confirmed_interval_s) if self._all_confirmed() else d.interval_s
        interval *= self.slowdown
        due = (boxes and since >= interval) or (self.tracker.watching_stops()
                                                and since >= d.still_interval_s * self.slowdown)
        dets: list[Detection] = []
        called = bool(armed and due and self.detector is not None)
        if called:
            assert self.detector is not None
            self.last_call = mono
            self.detector_calls += 1
            # tracked objects stay in view while they stand still, so counts and stop zones keep their tracks
            traffic = self.cam.traffic
            self.tracker.expire(mono, self._hold_s())  # a stale track must not widen the regions looked at
            tracked = [t.box for t in self.tracker.tracks] if traffic.lines or traffic.stop_zones else []
            regions = merge_regions(boxes + tracked, *self.frame_size) if boxes else [(0, 0, *self.frame_size)]
            try:
                dets = self._in_zones([x for x in self.detector.detect(frame, regions) if x.label in d.classes])
            except NoAnswer:
                called = False  # a busy shared detector shed the call: no misses counted, no tracks moved
        elif not boxes and mono - max(self.last_call, self.last_miss) >= d.interval_s:
            self.last_miss = mono  # not last_call: that would hold off the still_interval_s calls for stop zones
            for c in self.confirmers.values():
                c.add(False)  # a still scene counts as a miss so stale hits age out
        out: list[Output] = self.events.step(frame, mono, wall, armed, boxes, result.changed * 100.0, result.travel,
                                             self._seen(dets, boxes, called))
        if called:
            crossings, stops = self.tracker.update(dets, mono, self._hold_s())
            out += [CountOut(c.line, c.label, c.direction, wall) for c in crossings]
            for s in stops:
                limit = next(z.stopped_after_s for z in self.cam.traffic.stop_zones if z.name == s.zone)
                out += self.events.alert("vehicle_stopped", frame, wall, [s.box], s.score, {
                    "zone": s.zone, "class": s.label, "stopped_s": s.standing_s, "track": s.track,
                    "reason": f"{s.label} stood {s.standing_s:.0f} s in zone {s.zone} (limit {limit:g} s)"})
        return out

    def flush(self, mono: float, wall: float) -> list[Output]:
        return self.events.flush(wall, mono)
