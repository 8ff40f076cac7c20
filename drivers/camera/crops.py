"""What the shared detector looks at: square crops of the full-resolution frame at one network input size.

One planned network means one input side S. Motion that fits in one square of the picture's short side is one
crop (at least S wide, so a far person keeps its pixels); a region up to WIDE times that is letterboxed whole
(it is made of big objects); wider motion is split into several squares side by side instead of a second,
larger network; with no motion to go by, the whole frame is letterboxed into one.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from drivers.camera.detectors import Box, square_crop

PAD = 114  # the grey YOLO letterboxes with
WIDE = 1.5  # a region this many short sides long is still one crop: two would cut its objects in half


def _split(region: Box, width: int, height: int, size: int) -> list[Box]:
    """Squares of the short side (at least size) side by side, covering one region too wide or tall for one."""
    short = min(width, height)
    x, y, w, h = region
    side = min(short, max(size, min(max(w, h), short)))
    nx, ny = max(1, math.ceil(w / side)), max(1, math.ceil(h / side))
    out = []
    for i in range(nx):
        for j in range(ny):
            cx = x + (w - side) * i // max(1, nx - 1) if nx > 1 else x + (w - side) // 2
            cy = y + (h - side) * j // max(1, ny - 1) if ny > 1 else y + (h - side) // 2
            out.append((min(max(0, cx), width - side), min(max(0, cy), height - side), side, side))
    return out


def plan_crops(regions: list[Box], width: int, height: int, size: int, limit: int) -> list[Box]:
    """Source rectangles (x, y, w, h) for one detector call: one square around all regions when they fit,
    else squares per region (the largest regions first), at most limit; the whole frame letterboxed when regions
    is empty or is the whole frame."""
    if not regions or regions == [(0, 0, width, height)]:
        return [(0, 0, width, height)]
    one = square_crop(regions, width, height, size)
    if one is not None:
        return [one]
    out: list[Box] = []
    for region in regions:
        if (sq := square_crop([region], width, height, size)) is not None:
            crops = [sq]
        elif max(region[2], region[3]) <= WIDE * min(width, height):
            crops = [region]
        else:
            crops = _split(region, width, height, size)
        for crop in crops:
            if not any(_within(crop, o) for o in out):
                out.append(crop)
    return out[:limit]


def _within(a: Box, b: Box) -> bool:
    return b[0] <= a[0] and b[1] <= a[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]


def render_crop(frame: np.ndarray, rect: Box, out: np.ndarray) -> float:
    """Scale rect of frame into out (S×S×3, written in place: no allocation per call), top-left aligned and
    padded when rect is not square; the scale from frame pixels to out pixels."""
    size = out.shape[0]
    x, y, w, h = rect
    scale = size / max(w, h)
    tw, th = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    src = frame[y:y + h, x:x + w]
    dst = out[:th, :tw]
    if (w, h) == (tw, th):
        dst[...] = src
    else:
        cv2.resize(src, (tw, th), dst=dst, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if th < size:
        out[th:] = PAD
    if tw < size:
        out[:th, tw:] = PAD
    return scale
