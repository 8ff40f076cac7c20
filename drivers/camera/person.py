"""Person detectors for a CPU-only box: OpenCV's HOG on motion regions, or a YOLO-style ONNX model."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from drivers.camera.config import PersonConfig

Box = tuple[int, int, int, int]  # x, y, w, h in full-frame pixels
HOG_WIN = (64, 128)


class PersonModelError(Exception):
    """The configured detector cannot be loaded (missing or unreadable model file)."""


@dataclass
class Detection:
    box: Box
    score: float


class PersonDetector(Protocol):
    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        """People in frame (BGR, full size), looking only inside regions when the detector allows it."""


def merge_regions(boxes: list[Box], width: int, height: int, grow: float = 0.3, limit: int = 3) -> list[Box]:
    """Grow motion boxes, merge overlapping ones and keep the largest few: HOG cost grows with area."""
    grown: list[list[int]] = []
    for x, y, w, h in boxes:
        dx, dy = int(w * grow), int(h * grow)
        grown.append([max(0, x - dx), max(0, y - dy), min(width, x + w + dx), min(height, y + h + dy)])
    merged = True
    while merged:
        merged = False
        for i in range(len(grown)):
            for j in range(i + 1, len(grown)):
                a, b = grown[i], grown[j]
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    grown[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del grown[j]
                    merged = True
                    break
            if merged:
                break
    out = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in grown]
    out.sort(key=lambda b: b[2] * b[3], reverse=True)
    return out[:limit]


class HogPersonDetector:
    """OpenCV's default people SVM; regions are scaled so a person is a few HOG windows tall."""

    def __init__(self, cfg: PersonConfig) -> None:
        self.cfg = cfg
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        out: list[Detection] = []
        for x, y, w, h in regions:
            crop = frame[y:y + h, x:x + w]
            scale = min(1.0, self.cfg.max_side / max(w, h))
            if scale < 1.0:
                crop = cv2.resize(crop, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
            ch, cw = crop.shape[:2]
            if ch < HOG_WIN[1] or cw < HOG_WIN[0]:
                pad_y, pad_x = max(0, HOG_WIN[1] - ch), max(0, HOG_WIN[0] - cw)
                crop = cv2.copyMakeBorder(crop, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
            rects, weights = self.hog.detectMultiScale(crop, winStride=(8, 8), padding=(8, 8), scale=1.05)
            for (rx, ry, rw, rh), wgt in zip(rects, np.ravel(weights)):
                if float(wgt) < self.cfg.min_score:
                    continue
                box = (x + int(rx / scale), y + int(ry / scale), int(rw / scale), int(rh / scale))
                out.append(Detection(box, float(wgt)))
        return out


def parse_yolo(output: np.ndarray, class_id: int, min_score: float) -> list[tuple[Box, float]]:
    """Boxes (in model input pixels) of one class from a YOLOv5 (N×(5+C)) or YOLOv8 ((4+C)×N) output."""
    out = np.squeeze(output)
    if out.ndim != 2:
        raise ValueError(f"unexpected YOLO output shape {output.shape}")
    if out.shape[0] < out.shape[1]:  # v8 layout: rows are features
        out = out.T
        scores = out[:, 4 + class_id]
    else:  # v5 layout: objectness × class probability
        scores = out[:, 4] * out[:, 5 + class_id]
    keep = scores >= min_score
    found = []
    for (cx, cy, w, h), s in zip(out[keep, :4], scores[keep]):
        found.append(((int(cx - w / 2), int(cy - h / 2), int(w), int(h)), float(s)))
    return found


class OnnxPersonDetector:
    """A YOLO-style ONNX model through cv2.dnn, on the whole letterboxed frame."""

    def __init__(self, cfg: PersonConfig) -> None:
        self.cfg = cfg
        path = Path(cfg.model) if cfg.model else None
        if path is None or not path.is_file():
            raise PersonModelError(f"ONNX model file not found: {path}")
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise PersonModelError(f"cannot load ONNX model {path}: {exc}") from None

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        size = self.cfg.input_size
        h, w = frame.shape[:2]
        scale = size / max(w, h)
        canvas = np.full((size, size, 3), 114, np.uint8)
        canvas[: int(h * scale), : int(w * scale)] = cv2.resize(frame, (int(w * scale), int(h * scale)))
        blob = cv2.dnn.blobFromImage(canvas, 1 / 255.0, (size, size), swapRB=True)
        self.net.setInput(blob)
        found = parse_yolo(self.net.forward(), self.cfg.class_id, self.cfg.min_score)
        if not found:
            return []
        boxes = [list(b) for b, _ in found]
        scores = [s for _, s in found]
        keep = np.ravel(cv2.dnn.NMSBoxes(boxes, scores, self.cfg.min_score, 0.45))
        return [Detection(tuple(int(v / scale) for v in boxes[i]), scores[i]) for i in keep]  # type: ignore[misc]


def make_person_detector(cfg: PersonConfig) -> PersonDetector:
    return OnnxPersonDetector(cfg) if cfg.detector == "onnx" else HogPersonDetector(cfg)


class PersonConfirmer:
    """A person counts only when seen in confirm_hits of the last confirm_window detector calls."""

    def __init__(self, hits: int, window: int) -> None:
        self.hits = hits
        self.recent: deque[bool] = deque(maxlen=window)

    def add(self, seen: bool) -> bool:
        self.recent.append(seen)
        return sum(self.recent) >= self.hits

    def reset(self) -> None:
        self.recent.clear()
