"""Motion on a small grey frame: running-average background, threshold, morphology, contours.

Global light changes (IR switch, lights, clouds) recalibrate the background instead of firing. Blobs
are followed from frame to frame: only one that travels `min_travel_pct` counts as a mover, so a branch
or a flag swinging in place, and rain, never start an event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # only types: the worker process never imports pydantic (see plain.py)
    from drivers.camera.config import MotionConfig


Box = tuple[int, int, int, int]  # x, y, w, h
SETTLE_FRAMES = 3  # frames after a light change during which the background just follows the picture
BLOB_MISSES = 2  # frames a blob may go unseen (detector noise) before its travel is forgotten


@dataclass
class MotionResult:
    boxes: list[Box] = field(default_factory=list)
    changed: float = 0.0  # fraction of the (unmasked) frame that changed
    recalibrated: bool = False
    travel: float = 0.0  # farthest any current blob has moved from where it appeared, fraction of the width


@dataclass
class Blob:
    origin: tuple[float, float]  # where it appeared: a swinging branch keeps coming back to it, a mover leaves it
    centre: tuple[float, float]
    reach: float
    missed: int = 0
    travel: float = 0.0


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2] / 2.0, box[1] + box[3] / 2.0)


def mask_image(polygons: list[list[tuple[float, float]]], width: int, height: int) -> np.ndarray | None:
    """255 where motion counts, 0 inside the masked polygons (given as fractions of the frame)."""
    if not polygons:
        return None
    img = np.full((height, width), 255, np.uint8)
    for poly in polygons:
        pts = np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in poly], np.int32)
        cv2.fillPoly(img, [pts], 0)
    return img


class MotionDetector:
    """Feed it grey frames of one fixed size; it returns the moving blobs."""

    def __init__(self, cfg: MotionConfig, width: int, height: int) -> None:
        self.cfg = cfg
        self.size = (width, height)
        self.mask = mask_image(cfg.masks, width, height)
        active = int(np.count_nonzero(self.mask)) if self.mask is not None else width * height
        self.active_px = max(active, 1)
        self.min_area_px = max(4.0, cfg.min_area_pct / 100.0 * width * height)
        self.kernel_open = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        self.kernel_dilate = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
        self.background: np.ndarray | None = None
        self.settle = 0
        self.recalibrations = 0
        self.blobs: list[Blob] = []

    def _follow(self, boxes: list[Box]) -> float:
        """Match blobs to the nearest of the last frame's; return the largest travel among those seen now."""
        width = float(self.size[0])
        free = list(self.blobs)
        seen: list[Blob] = []
        for box in sorted(boxes, key=lambda b: b[2] * b[3], reverse=True):
            c = _centre(box)
            reach = 0.6 * max(box[2], box[3], 8)  # a blob moves less than its own size between analysed frames
            best = min(free, key=lambda b: math.dist(b.centre, c), default=None)
            if best is not None and math.dist(best.centre, c) <= min(reach, best.reach):
                free.remove(best)
                best.centre, best.reach, best.missed = c, reach, 0
                best.travel = max(best.travel, math.dist(best.origin, c) / width)
                seen.append(best)
            else:
                seen.append(Blob(c, c, reach))
        kept = [b for b in free if b.missed < BLOB_MISSES]
        for b in kept:
            b.missed += 1
        self.blobs = seen + kept
        return max((b.travel for b in seen), default=0.0)

    def _blur(self, grey: np.ndarray) -> np.ndarray:
        k = self.cfg.blur
        return cv2.GaussianBlur(grey, (k, k), 0) if k > 1 else grey

    def _recalibrate(self, frame: np.ndarray) -> MotionResult:
        self.background = frame.astype(np.float32)
        self.blobs = []
        self.settle = SETTLE_FRAMES
        self.recalibrations += 1
        return MotionResult(recalibrated=True)

    def detect(self, grey: np.ndarray) -> MotionResult:
        frame = self._blur(grey)
        if self.background is None:
            self.background = frame.astype(np.float32)
            return MotionResult()
        if self.settle > 0:
            self.settle -= 1
            self.background = frame.astype(np.float32)
            return MotionResult(recalibrated=True)
        bg = cv2.convertScaleAbs(self.background)
        shift = cv2.mean(frame, self.mask)[0] - cv2.mean(bg, self.mask)[0]
        if abs(shift) > self.cfg.brightness_jump:
            return self._recalibrate(frame)
        diff = cv2.absdiff(frame, bg)
        _, th = cv2.threshold(diff, self.cfg.threshold, 255, cv2.THRESH_BINARY)
        if self.mask is not None:
            th = cv2.bitwise_and(th, self.mask)
        th = cv2.morphologyEx(th, cv2.MORPH_OPEN, self.kernel_open)  # drops speckle noise and thin rain streaks
        changed = cv2.countNonZero(th) / self.active_px
        if changed * 100.0 > self.cfg.max_changed_pct:
            return self._recalibrate(frame)
        cv2.accumulateWeighted(frame, self.background, self.cfg.learn_rate)
        if changed == 0.0:
            self._follow([])
            return MotionResult()
        th = cv2.dilate(th, self.kernel_dilate, iterations=2)
        contours, _ = cv2.findContours(th, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[Box] = [tuple(int(v) for v in cv2.boundingRect(c))  # type: ignore[misc]
                            for c in contours if cv2.contourArea(c) >= self.min_area_px]
        return MotionResult(boxes=boxes, changed=changed, travel=self._follow(boxes))
