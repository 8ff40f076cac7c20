"""Object detectors for a CPU-only box: YOLOv3-tiny (COCO) or your ONNX model through cv2.dnn, or HOG.

All run on BGR frames at full size and return boxes in full-frame pixels with a COCO-style label. The
networks look at one square crop of the full-resolution frame around the moving regions (a person far away
keeps its pixels, and a small input is cheap), and at the whole frame only when the regions do not fit in one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from drivers.camera.models import ModelError, load_installed
from drivers.camera.plain import VEHICLE_CLASSES

if TYPE_CHECKING:  # only types: the worker process never imports pydantic (see plain.py)
    from drivers.camera.config import DetectConfig

Box = tuple[int, int, int, int]  # x, y, w, h in full-frame pixels
HOG_WIN = (64, 128)
HOG_REGIONS = 3  # HOG cost grows with area: only the largest few regions
NMS_IOU = 0.45
COCO_ALIASES = {"motorbike": "motorcycle"}  # Darknet's coco.names spells it the old way
COCO80 = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass "
    "cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
    "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink "
    "refrigerator book clock vase scissors teddy_bear hair_drier toothbrush").split()


def kind_of(label: str) -> str:
    """The event kind a COCO label belongs to: vehicle or person."""
    return "vehicle" if label in VEHICLE_CLASSES else "person"


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


def merge_regions(boxes: list[Box], width: int, height: int, grow: float = 0.3, limit: int = 8) -> list[Box]:
    """Grow motion boxes and merge overlapping ones, largest first."""
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
        for x, y, w, h in regions[:HOG_REGIONS]:
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


def square_crop(regions: list[Box], width: int, height: int, min_side: int) -> Box | None:
    """The square (at least min_side, inside the frame) around all regions; None if they do not fit in one."""
    if not regions:
        return None
    x0, y0 = min(r[0] for r in regions), min(r[1] for r in regions)
    x1, y1 = max(r[0] + r[2] for r in regions), max(r[1] + r[3] for r in regions)
    short = min(width, height)
    need = max(x1 - x0, y1 - y0)
    if need > short:
        return None
    side = min(max(need, min_side), short)
    x = min(max(0, (x0 + x1 - side) // 2), width - side)
    y = min(max(0, (y0 + y1 - side) // 2), height - side)
    return (x, y, side, side)


def crop_input_size(side: int, width: int, height: int, cfg: DetectConfig) -> int:
    """region_size, or input_size when objects in the crop would be smaller than in the whole frame. Only these
    two: cv2.dnn re-plans a network for each new input shape (~3 calls' worth of CPU), so each size keeps its own."""
    return cfg.region_size if side * cfg.input_size <= cfg.region_size * max(width, height) else cfg.input_size


def network_input(frame: np.ndarray, regions: list[Box], cfg: DetectConfig,
                  fixed_size: bool = False) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(square input picture, its scale, the frame offset of its top-left): a crop when regions allow, else
    the whole letterboxed frame. fixed_size keeps input_size (models exported for one input shape)."""
    h, w = frame.shape[:2]
    crop = square_crop(regions, w, h, cfg.input_size if fixed_size else cfg.region_size) if cfg.region_size else None
    if crop is None:
        canvas, scale = _letterbox(frame, cfg.input_size)
        return canvas, scale, (0, 0)
    x, y, side, _ = crop
    size = cfg.input_size if fixed_size else crop_input_size(side, w, h, cfg)
    part = frame[y:y + side, x:x + side]
    if side != size:
        part = cv2.resize(part, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return part, size / side, (x, y)


def _letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    h, w = frame.shape[:2]
    scale = size / max(w, h)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: int(h * scale), : int(w * scale)] = cv2.resize(frame, (int(w * scale), int(h * scale)),
                                                             interpolation=cv2.INTER_AREA)
    return canvas, scale


def keep_wanted(cfg: DetectConfig, found: list[tuple[Box, float, str]], scale: float = 1.0,
                offset: tuple[int, int] = (0, 0)) -> list[Detection]:
    """Wanted classes above their score, non-maximum suppressed per class, back in frame pixels."""
    wanted = [(b, s, lab) for b, s, lab in found if lab in cfg.classes and s >= cfg.score_for(lab)]
    out: list[Detection] = []
    for label in {lab for _, _, lab in wanted}:
        group = [(b, s) for b, s, lab in wanted if lab == label]
        boxes = [list(b) for b, _ in group]
        scores = [s for _, s in group]
        for i in np.ravel(cv2.dnn.NMSBoxes(boxes, scores, 0.0, NMS_IOU)):
            x, y, w, h = (int(v / scale) for v in boxes[i])
            out.append(Detection((x + offset[0], y + offset[1], w, h), scores[i], label))
    return out


class DarknetDetector:
    """The installed YOLOv3-tiny (COCO) through cv2.dnn: people and vehicles, at any input side (multiple of 32)."""

    name = "yolo"

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        try:
            model = load_installed(cfg.model_dir)
        except ModelError as exc:
            raise DetectorError(str(exc)) from None
        self.model = model
        self.nets: dict[int, cv2.dnn.Net] = {}
        net = self._net(cfg.input_size)
        names = model.names.read_text().split()
        self.labels = [COCO_ALIASES.get(n, n) for n in names]
        self.outputs = net.getUnconnectedOutLayersNames()

    def _net(self, size: int) -> cv2.dnn.Net:
        """One network per input side, made on first use (the region-size one is ~40 % of the whole-frame one)."""
        net = self.nets.get(size)
        if net is None:
            try:
                net = self.nets[size] = cv2.dnn.readNetFromDarknet(str(self.model.cfg), str(self.model.weights))
            except cv2.error as exc:
                raise DetectorError(f"cannot load the YOLO model in {self.model.cfg.parent}: {exc}") from None
        return net

    def warm_up(self) -> None:
        """Plan both networks now (the first call at a size costs 4x a normal one), not at the first motion."""
        for size in {self.cfg.input_size, self.cfg.region_size} - {0}:
            net = self._net(size)
            net.setInput(np.zeros((1, 3, size, size), np.float32))
            net.forward(self.outputs)

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        canvas, scale, offset = network_input(frame, regions, self.cfg)
        size = canvas.shape[0]
        net = self._net(size)
        net.setInput(cv2.dnn.blobFromImage(canvas, 1 / 255.0, (size, size), swapRB=True, crop=False))
        rows = np.vstack(net.forward(self.outputs))
        scores = rows[:, 5:]  # OpenCV's region layer already multiplies in the objectness
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(cls)), cls]
        low = min(self.cfg.score_for(c) for c in self.cfg.classes)
        found = []
        for row, s, c in zip(rows[best >= low], best[best >= low], cls[best >= low]):
            cx, cy, w, h = row[:4] * size
            found.append(((int(cx - w / 2), int(cy - h / 2), int(w), int(h)), float(s), self.labels[c]))
        return keep_wanted(self.cfg, found, scale, offset)


class OnnxDetector:
    """A YOLOv5/v8-style ONNX model through cv2.dnn, always at input_size (exported models have one shape)."""

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
        canvas, scale, offset = network_input(frame, regions, self.cfg, fixed_size=True)
        self.net.setInput(cv2.dnn.blobFromImage(canvas, 1 / 255.0, (size, size), swapRB=True))
        low = min(self.cfg.score_for(c) for c in self.cfg.classes)
        found = [(b, s, self.labels[c] if c < len(self.labels) else str(c))
                 for b, s, c in parse_yolo(self.net.forward(), low)]
        return keep_wanted(self.cfg, found, scale, offset)


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
