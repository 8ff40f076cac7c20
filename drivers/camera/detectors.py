"""Object detectors for a CPU-only box: YOLOv3-tiny (COCO) or your ONNX model through cv2.dnn, or HOG.

All run on BGR frames at full size and return boxes in full-frame pixels with a COCO-style label.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from drivers.camera.config import DetectConfig
from drivers.camera.models import ModelError, load_installed

Box = tuple[int, int, int, int]  # x, y, w, h in full-frame pixels
HOG_WIN = (64, 128)
NMS_IOU = 0.45
COCO_ALIASES = {"motorbike": "motorcycle"}  # Darknet's coco.names spells it the old way
COCO80 = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass "
    "cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
    "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink "
    "refrigerator book clock vase scissors teddy_bear hair_drier toothbrush").split()


class DetectorError(Exception):
    """The configured detector cannot be loaded (missing, corrupt or unreadable model)."""


@dataclass
class Detection:
    box: Box
    score: float
    label: str = "person"


class Detector(Protocol):
    name: str

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        """Objects in frame (BGR, full size), looking only inside regions when the detector allows it."""


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


class HogDetector:
    """OpenCV's default people SVM; regions are scaled so a person is a few HOG windows tall."""

    name = "hog"

    def __init__(self, cfg: DetectConfig) -> None:
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
                if float(wgt) < self.cfg.score_for("person"):
                    continue
                box = (x + int(rx / scale), y + int(ry / scale), int(rw / scale), int(rh / scale))
                out.append(Detection(box, float(wgt), "person"))
        return out


def parse_yolo(output: np.ndarray, min_score: float) -> list[tuple[Box, float, int]]:
    """(box in model input pixels, score, class index) from a YOLOv5 (N×(5+C)) or YOLOv8 ((4+C)×N) output."""
    out = np.squeeze(output)
    if out.ndim != 2:
        raise ValueError(f"unexpected YOLO output shape {output.shape}")
    if out.shape[0] < out.shape[1]:  # v8 layout: rows are features
        out = out.T
        scores = out[:, 4:]
    else:  # v5 layout: objectness × class probability
        scores = out[:, 4:5] * out[:, 5:]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(cls)), cls]
    keep = best >= min_score
    return [((int(cx - w / 2), int(cy - h / 2), int(w), int(h)), float(s), int(c))
            for (cx, cy, w, h), s, c in zip(out[keep, :4], best[keep], cls[keep])]


def _letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    h, w = frame.shape[:2]
    scale = size / max(w, h)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: int(h * scale), : int(w * scale)] = cv2.resize(frame, (int(w * scale), int(h * scale)),
                                                             interpolation=cv2.INTER_AREA)
    return canvas, scale


def _keep(cfg: DetectConfig, found: list[tuple[Box, float, str]], scale: float) -> list[Detection]:
    """Wanted classes above their score, non-maximum suppressed per class, back in frame pixels."""
    wanted = [(b, s, lab) for b, s, lab in found if lab in cfg.classes and s >= cfg.score_for(lab)]
    out: list[Detection] = []
    for label in {lab for _, _, lab in wanted}:
        group = [(b, s) for b, s, lab in wanted if lab == label]
        boxes = [list(b) for b, _ in group]
        scores = [s for _, s in group]
        for i in np.ravel(cv2.dnn.NMSBoxes(boxes, scores, 0.0, NMS_IOU)):
            x, y, w, h = (int(v / scale) for v in boxes[i])
            out.append(Detection((x, y, w, h), scores[i], label))
    return out


class DarknetDetector:
    """The installed YOLOv3-tiny (COCO) through cv2.dnn on the whole letterboxed frame: people and vehicles."""

    name = "yolo"

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        try:
            model = load_installed(cfg.model_dir)
        except ModelError as exc:
            raise DetectorError(str(exc)) from None
        try:
            self.net = cv2.dnn.readNetFromDarknet(str(model.cfg), str(model.weights))
        except cv2.error as exc:
            raise DetectorError(f"cannot load the YOLO model in {model.cfg.parent}: {exc}") from None
        names = model.names.read_text().split()
        self.labels = [COCO_ALIASES.get(n, n) for n in names]
        self.outputs = self.net.getUnconnectedOutLayersNames()

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        size = self.cfg.input_size
        canvas, scale = _letterbox(frame, size)
        self.net.setInput(cv2.dnn.blobFromImage(canvas, 1 / 255.0, (size, size), swapRB=True, crop=False))
        rows = np.vstack(self.net.forward(self.outputs))
        scores = rows[:, 5:]  # OpenCV's region layer already multiplies in the objectness
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(cls)), cls]
        low = min(self.cfg.score_for(c) for c in self.cfg.classes)
        found = []
        for row, s, c in zip(rows[best >= low], best[best >= low], cls[best >= low]):
            cx, cy, w, h = row[:4] * size
            found.append(((int(cx - w / 2), int(cy - h / 2), int(w), int(h)), float(s), self.labels[c]))
        return _keep(self.cfg, found, scale)


class OnnxDetector:
    """A YOLOv5/v8-style ONNX model through cv2.dnn, on the whole letterboxed frame."""

    name = "onnx"

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        path = Path(cfg.model) if cfg.model else None
        if path is None or not path.is_file():
            raise DetectorError(f"ONNX model file not found: {path}")
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise DetectorError(f"cannot load ONNX model {path}: {exc}") from None
        self.labels = list(cfg.onnx_labels) or COCO80

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        size = self.cfg.input_size
        canvas, scale = _letterbox(frame, size)
        self.net.setInput(cv2.dnn.blobFromImage(canvas, 1 / 255.0, (size, size), swapRB=True))
        low = min(self.cfg.score_for(c) for c in self.cfg.classes)
        found = [(b, s, self.labels[c] if c < len(self.labels) else str(c))
                 for b, s, c in parse_yolo(self.net.forward(), low)]
        return _keep(self.cfg, found, scale)


def make_detector(cfg: DetectConfig) -> tuple[Detector, str | None]:
    """The configured detector, or HOG with the reason when its model cannot be loaded."""
    if cfg.detector == "hog":
        return HogDetector(cfg), None
    try:
        return (DarknetDetector(cfg) if cfg.detector == "yolo" else OnnxDetector(cfg)), None
    except DetectorError as exc:
        return HogDetector(cfg), f"{cfg.detector} detector unavailable, using HOG (people only): {exc}"


class Confirmer:
    """An object kind counts only when seen in confirm_hits of the last confirm_window detector calls."""

    def __init__(self, hits: int, window: int) -> None:
        self.hits = hits
        self.recent: deque[bool] = deque(maxlen=window)

    def add(self, seen: bool) -> bool:
        self.recent.append(seen)
        return sum(self.recent) >= self.hits

    def reset(self) -> None:
        self.recent.clear()
