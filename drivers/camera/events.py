"""Motion and person events with start/update/end phases and the best snapshot of each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Union

import cv2
import numpy as np

from drivers.camera.config import CameraConfig
from drivers.camera.snapshots import encode_jpeg

Box = tuple[int, int, int, int]


@dataclass
class EventOut:
    """One phase of an event; `event_id` is shared by its start, updates and end."""

    kind: str
    phase: str
    event_id: str
    ts: float
    data: dict[str, Any]


@dataclass
class SnapshotOut:
    """The best picture of an event, ready-encoded at the configured snapshot size."""

    kind: str
    event_id: str
    jpeg: bytes
    score: float


Output = Union[EventOut, SnapshotOut]


@dataclass
class Activity:
    kind: str
    started_wall: float
    started_mono: float
    last_seen: float
    last_update: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    max_score: float = 0.0
    best_score: float = -1.0
    best_frame: np.ndarray | None = None
    best_boxes: list[Box] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    updates: int = 0
    linked: str | None = None

    def observe(self, score: float, boxes: list[Box], frame: np.ndarray, mono: float) -> None:
        self.last_seen = mono
        self.boxes = boxes
        self.max_score = max(self.max_score, score)
        if score > self.best_score:
            self.best_score = score
            self.best_frame = frame.copy()
            self.best_boxes = list(boxes)


def _rel_boxes(boxes: list[Box], size: tuple[int, int]) -> list[list[float]]:
    w, h = size
    return [[round(x / w, 3), round(y / h, 3), round(bw / w, 3), round(bh / h, 3)] for x, y, bw, bh in boxes]


class EventTracker:
    """Turns per-frame motion and person results of one camera into debounced events."""

    def __init__(self, cam: CameraConfig) -> None:
        self.cam = cam
        self.motion: Activity | None = None
        self.person: Activity | None = None
        self.streak = 0
        self.size = (1, 1)

    def _event(self, act: Activity, phase: str, wall: float, mono: float) -> EventOut:
        data: dict[str, Any] = {
            "camera": self.cam.name, "phase": phase, "event_id": act.id,
            "score": round(act.max_score, 3), "boxes": _rel_boxes(act.boxes, self.size),
            "started_at": round(act.started_wall, 3),
            "duration_s": round(max(0.0, mono - act.started_mono), 2),
        }
        if act.linked:
            data["motion_id"] = act.linked
        if phase == "end":
            data["duration_s"] = round(max(0.0, act.last_seen - act.started_mono), 2)
            data["snapshot"] = act.best_frame is not None
        return EventOut(act.kind, phase, act.id, wall, data)

    def _end(self, act: Activity, wall: float, mono: float) -> list[Output]:
        out: list[Output] = [self._event(act, "end", wall, mono)]
        if act.best_frame is not None:
            frame = act.best_frame
            colour = (0, 0, 255) if act.kind == "person" else (0, 200, 255)
            for x, y, w, h in act.best_boxes:
                cv2.rectangle(frame, (x, y), (x + w, y + h), colour, max(1, frame.shape[1] // 400))
            snap = self.cam.snapshot
            out.append(SnapshotOut(act.kind, act.id, encode_jpeg(frame, snap.width, snap.quality), act.best_score))
        return out

    def _continue(self, act: Activity, wall: float, mono: float) -> list[Output]:
        if mono - act.last_update >= self.cam.update_every_s:
            act.last_update = mono
            act.updates += 1
            return [self._event(act, "update", wall, mono)]
        return []

    def step(self, frame: np.ndarray, mono: float, wall: float, armed: bool, motion_boxes: list[Box],
             motion_score: float, people: list[tuple[Box, float]], person_confirmed: bool) -> list[Output]:
        """Advance with one analysed frame; boxes are in full-frame pixels."""
        self.size = (frame.shape[1], frame.shape[0])
        out: list[Output] = []
        if not armed:
            self.streak = 0
            return self.flush(wall, mono)
        self.streak = self.streak + 1 if motion_boxes else 0
        end_after = self.cam.motion.end_after_s
        if self.person is not None and self.motion is not None and motion_boxes:
            self.person.last_seen = mono  # HOG misses some frames: the person stays while their motion goes on
        for name in ("person", "motion"):
            act: Activity | None = getattr(self, name)
            if act and (mono - act.last_seen >= end_after or mono - act.started_mono >= self.cam.max_event_s):
                out += self._end(act, wall, mono)
                setattr(self, name, None)
        if self.motion is None and self.streak >= self.cam.motion.frames_to_start:
            self.motion = Activity("motion", wall, mono, mono, mono)
            self.motion.observe(motion_score, motion_boxes, frame, mono)
            out.append(self._event(self.motion, "start", wall, mono))
        elif self.motion is not None and motion_boxes:
            self.motion.observe(motion_score, motion_boxes, frame, mono)
            out += self._continue(self.motion, wall, mono)
        if people:
            score = max(s for _, s in people)
            boxes = [b for b, _ in people]
            if self.person is None and person_confirmed:
                self.person = Activity("person", wall, mono, mono, mono,
                                       linked=self.motion.id if self.motion else None)
                self.person.observe(score, boxes, frame, mono)
                out.append(self._event(self.person, "start", wall, mono))
            elif self.person is not None:
                self.person.observe(score, boxes, frame, mono)
        if self.person is not None:
            out += self._continue(self.person, wall, mono)
        return out

    def flush(self, wall: float, mono: float) -> list[Output]:
        """End whatever is open (disarmed, stream ended, shutting down)."""
        out: list[Output] = []
        for name in ("person", "motion"):
            act = getattr(self, name)
            if act is not None:
                out += self._end(act, wall, mono)
                setattr(self, name, None)
        return out
