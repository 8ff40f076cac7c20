"""Drawn traffic with exact truth: coloured boxes for each class move along known paths across a counting
line, and a detector that finds exactly those boxes — so any miscount is the tracker's or the line's."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drivers.camera.config import DetectConfig
from drivers.camera.detectors import Box, Detection, square_crop
from tests.camera.scenes import background

COLOURS = {"car": (0, 0, 255), "motorcycle": (255, 0, 0), "person": (0, 255, 0), "truck": (0, 255, 255)}
SIZES = {"car": (0.12, 0.14), "motorcycle": (0.04, 0.12), "person": (0.03, 0.15), "truck": (0.16, 0.2)}
LINE = [(0.1, 0.5), (0.7, 0.5)]  # left to right: moving down the picture crosses to its right = "in"


@dataclass(frozen=True)
class Mover:
    label: str
    path: tuple[tuple[float, float], ...]  # foot point waypoints (fractions), visited evenly over [t0, t1]
    t0: float
    t1: float

    def foot(self, t: float) -> tuple[float, float] | None:
        if not self.t0 <= t <= self.t1:
            return None
        legs = len(self.path) - 1
        u = (t - self.t0) / (self.t1 - self.t0) * legs
        i = min(int(u), legs - 1)
        f = u - i
        (x0, y0), (x1, y1) = self.path[i], self.path[i + 1]
        return (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f)


# 2 motorcycles and a person go down through the line (in), a car comes up (out); a car drives up to
# the line and turns back, a motorcycle passes beyond the line's end, a person dithers across it once.
TRAFFIC = (
    Mover("motorcycle", ((0.2, 0.15), (0.25, 0.95)), 0.5, 3.5),
    Mover("car", ((0.5, 0.98), (0.45, 0.2)), 1.0, 4.5),
    Mover("motorcycle", ((0.3, 0.2), (0.3, 0.95)), 4.0, 6.5),
    Mover("car", ((0.6, 0.95), (0.6, 0.6), (0.62, 0.95)), 5.0, 9.0),
    Mover("motorcycle", ((0.88, 0.15), (0.9, 0.95)), 6.0, 8.5),
    Mover("person", ((0.15, 0.3), (0.16, 0.55), (0.16, 0.48), (0.17, 0.8)), 7.0, 11.0),
)
TRUTH = {("l1", "motorcycle", "in"): 2, ("l1", "car", "out"): 1, ("l1", "person", "in"): 1}


def box_at(label: str, foot: tuple[float, float], width: int, height: int) -> Box:
    fw, fh = SIZES[label]
    w, h = int(fw * width), int(fh * height)
    return (int(foot[0] * width - w / 2), int(foot[1] * height - h), w, h)


def render(movers: tuple[Mover, ...], width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    bg = background(width, height)
    frames = []
    for i in range(int(fps * seconds)):
        frame = bg.copy()
        for m in movers:
            p = m.foot(i / fps)
            if p is not None:
                x, y, w, h = box_at(m.label, p, width, height)
                cv2.rectangle(frame, (x, y), (x + w, y + h), COLOURS[m.label], -1)
        frames.append(frame)
    return frames


class ColourDetector:
    """Finds the pure-colour boxes of `render` (through JPEG-ish noise): the detector with known truth. Like the
    network detectors it looks only at the square crop around the regions when they fit in one."""

    name = "colour"

    def __init__(self, region_size: int = DetectConfig().region_size) -> None:
        self.region_size = region_size
        self.looked: list[Box] = []  # the part of the frame each call looked at

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        fh, fw = frame.shape[:2]
        x0, y0, cw, ch = square_crop(regions, fw, fh, self.region_size) or (0, 0, fw, fh)
        self.looked.append((x0, y0, cw, ch))
        out = []
        for label, bgr in COLOURS.items():
            lo = np.array([max(0, c - 60) if c else 0 for c in bgr], np.uint8)
            hi = np.array([255 if c else 60 for c in bgr], np.uint8)
            mask = np.zeros((fh, fw), np.uint8)
            mask[y0:y0 + ch, x0:x0 + cw] = cv2.inRange(frame[y0:y0 + ch, x0:x0 + cw], lo, hi)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for c in contours:
                if cv2.contourArea(c) >= 60:
                    x, y, w, h = cv2.boundingRect(c)
                    out.append(Detection((x, y, w, h), 0.9, label))
        return out
