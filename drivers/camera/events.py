"""Motion, person and vehicle events with start/update/end phases, each with its best snapshot and its reason."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import cv2
import numpy as np

from drivers.camera.phases import Phase
from drivers.camera.snapshots import encode_jpeg

if TYPE_CHECKING:  # only types: the worker process never imports pydantic (see plain.py)
    from drivers.camera.config import CameraConfig

Box = tuple[int, int, int, int]


@dataclass
class EventOut:
    """One phase of an event; `event_id` is shared by its start, updates and end."""

    kind: str
    phase: Phase
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


@dataclass
class CountOut:
    """One object crossing one counting line."""

    line: str
    label: str
    direction: str
    ts: float


Output = Union[EventOut, SnapshotOut, CountOut]
OBJECT_KINDS = ("person", "vehicle")
COLOURS = {"person": (0, 0, 255), "vehicle": (255, 128, 0), "motion": (0, 200, 255), "vehicle_stopped": (255, 0, 255)}


@dataclass
class Seen:
    """What the detector found of one kind in one call, and why it counts."""

    boxes: list[Box]
    score: float
    labels: list[str]
    confirmed: bool
    reason: str


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
    best_frame: np.ndarray | None = None  # kept at the snapshot's width: a full 720p copy per open event is 2.7 MB
    best_scale: float = 1.0  # best_frame pixels per frame pixel
    best_boxes: list[Box] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    updates: int = 0
    linked: str | None = None
    reason: str = ""
    labels: set[str] = field(default_factory=set)

    def observe(self, score: float, boxes: list[Box], frame: np.ndarray, mono: float, width: int) -> None:
        self.last_seen = mono
        self.boxes = boxes
        self.max_score = max(self.max_score, score)
        if score > self.best_score:
            self.best_score = score
            h, w = frame.shape[:2]
            if w > width:
                self.best_scale = width / w
                self.best_frame = cv2.resize(frame, (width, max(1, round(h * self.best_scale))),
                                             interpolation=cv2.INTER_AREA)
            else:
                self.best_scale, self.best_frame = 1.0, frame.copy()
            self.best_boxes = list(boxes)


def _rel_boxes(boxes: list[Box], size: tuple[int, int]) -> list[list[float]]:
    w, h = size
    return [[round(x / w, 3), round(y / h, 3), round(bw / w, 3), round(bh / h, 3)] for x, y, bw, bh in boxes]


def draw_boxes(frame: np.ndarray, boxes: list[Box], kind: str) -> np.ndarray:
    for x, y, w, h in boxes:
        cv2.rectangle(frame, (x, y), (x + w, y + h), COLOURS.get(kind, (0, 200, 255)), max(1, frame.shape[1] // 400))
    return frame


class EventTracker:
    """Turns per-frame motion and detector results of one camera into debounced events."""

    def __init__(self, cam: CameraConfig) -> None:
        self.cam = cam
        self.open: dict[str, Activity] = {}
        self.streak = 0
        self.size = (1, 1)

    def _event(self, act: Activity, phase: Phase, wall: float, mono: float) -> EventOut:
        data: dict[str, Any] = {
            "camera": self.cam.name, "phase": phase, "event_id": act.id,
            "score": round(act.max_score, 3), "boxes": _rel_boxes(act.boxes, self.size),
            "started_at": round(act.started_wall, 3),
            "duration_s": round(max(0.0, mono - act.started_mono), 2),
        }
        if act.linked:
            data["motion_id"] = act.linked
        if act.reason:
            data["reason"] = act.reason
        if act.kind == "vehicle":
            data["classes"] = sorted(act.labels)
        if phase is Phase.END:
            data["duration_s"] = round(max(0.0, act.last_seen - act.started_mono), 2)
            data["snapshot"] = act.best_frame is not None
        return EventOut(act.kind, phase, act.id, wall, data)

    def _end(self, act: Activity, wall: float, mono: float) -> list[Output]:
        out: list[Output] = [self._event(act, Phase.END, wall, mono)]
        if act.best_frame is not None:
            k = act.best_scale
            frame = draw_boxes(act.best_frame, [(int(x * k), int(y * k), int(w * k), int(h * k))
                                                for x, y, w, h in act.best_boxes], act.kind)
            snap = self.cam.snapshot
            out.append(SnapshotOut(act.kind, act.id, encode_jpeg(frame, snap.width, snap.quality), act.best_score))
        return out

    def _continue(self, act: Activity, wall: float, mono: float) -> list[Output]:
        if mono - act.last_update >= self.cam.update_every_s:
            act.last_update = mono
            act.updates += 1
            return [self._event(act, Phase.UPDATE, wall, mono)]
        return []

    def _expire(self, wall: float, mono: float) -> list[Output]:
        """End what went quiet or ran too long; an object ends at the latest with the motion it was seen in."""
        out: list[Output] = []
        for kind, act in list(self.open.items()):
            if mono - act.last_seen >= self.cam.motion.end_after_s or mono - act.started_mono >= self.cam.max_event_s:
                out += self._end(act, wall, mono)
                del self.open[kind]
        motion = self.open.get("motion")
        for kind in OBJECT_KINDS:
            act = self.open.get(kind)
            if act is not None and act.linked is not None and (motion is None or act.linked != motion.id):
                out += self._end(act, wall, mono)
                del self.open[kind]
        return out

    def step(self, frame: np.ndarray, mono: float, wall: float, armed: bool, motion_boxes: list[Box],
             motion_score: float, travel: float, seen: dict[str, Seen]) -> list[Output]:
        """Advance with one analysed frame; boxes are in full-frame pixels, travel a fraction of the width."""
        self.size = (frame.shape[1], frame.shape[0])
        out: list[Output] = []
        if not armed:
            self.streak = 0
            return self.flush(wall, mono)
        self.streak = self.streak + 1 if motion_boxes else 0
        motion = self.open.get("motion")
        if motion is not None and motion_boxes:
            for kind in OBJECT_KINDS:  # the detector misses some frames: an object stays while its motion goes on
                act = self.open.get(kind)
                if act is not None and act.linked == motion.id:
                    act.last_seen = mono
        out += self._expire(wall, mono)
        motion = self.open.get("motion")
        min_travel = self.cam.motion.min_travel_pct / 100.0
        if motion is None and self.streak >= self.cam.motion.frames_to_start and travel >= min_travel:
            motion = self.open["motion"] = Activity("motion", wall, mono, mono, mono)
            motion.reason = (f"a blob travelled {travel * 100:.0f}% of the width (min "
                             f"{self.cam.motion.min_travel_pct:g}%) over {self.streak} frames; "
                             f"{motion_score:.1f}% of the picture changed")
            motion.observe(motion_score, motion_boxes, frame, mono, self.cam.snapshot.width)
            out.append(self._event(motion, Phase.START, wall, mono))
        elif motion is not None and motion_boxes:
            motion.observe(motion_score, motion_boxes, frame, mono, self.cam.snapshot.width)
            out += self._continue(motion, wall, mono)
        for kind in OBJECT_KINDS:
            s = seen.get(kind)
            act = self.open.get(kind)
            if s is not None and s.boxes:
                if act is None and s.confirmed:
                    act = self.open[kind] = Activity(kind, wall, mono, mono, mono,
                                                     linked=motion.id if motion else None, reason=s.reason)
                    act.labels.update(s.labels)
                    act.observe(s.score, s.boxes, frame, mono, self.cam.snapshot.width)
                    out.append(self._event(act, Phase.START, wall, mono))
                elif act is not None:
                    act.labels.update(s.labels)
                    act.observe(s.score, s.boxes, frame, mono, self.cam.snapshot.width)
            if act is not None:
                out += self._continue(act, wall, mono)
        return out

    def alert(self, kind: str, frame: np.ndarray, wall: float, boxes: list[Box], score: float,
              data: dict[str, Any]) -> list[Output]:
        """A one-off event (vehicle_stopped) with its own snapshot."""
        self.size = (frame.shape[1], frame.shape[0])
        eid = uuid.uuid4().hex
        body = {"camera": self.cam.name, "phase": Phase.ALERT, "event_id": eid, "score": round(score, 3),
                "boxes": _rel_boxes(boxes, self.size), **data}
        snap = self.cam.snapshot
        jpeg = encode_jpeg(draw_boxes(frame.copy(), boxes, kind), snap.width, snap.quality)
        return [EventOut(kind, Phase.ALERT, eid, wall, body), SnapshotOut(kind, eid, jpeg, score)]

    def flush(self, wall: float, mono: float) -> list[Output]:
        """End whatever is open (disarmed, stream ended, shutting down)."""
        out: list[Output] = []
        for act in self.open.values():
            out += self._end(act, wall, mono)
        self.open.clear()
        return out
