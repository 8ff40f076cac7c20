"""Synthetic camera scenes with known truth: movers that must fire, light jumps and noise that must not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

ASTRONAUT = Path(__import__("skimage").__file__).parent / "data" / "astronaut.png"


@dataclass(frozen=True)
class Scene:
    name: str
    has_mover: bool
    has_person: bool
    render: Callable[[int, int, int, float], list[np.ndarray]]  # (width, height, fps, seconds) -> BGR frames


def background(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A street-ish picture: sky gradient, blocks of 'buildings', a road, fixed texture."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    sky = np.linspace(170, 120, height // 2, dtype=np.float32)
    img[: height // 2] = sky[:, None, None].astype(np.uint8)
    img[height // 2:] = (90, 95, 100)
    for _ in range(8):
        x = int(rng.integers(0, width - width // 6))
        w = int(rng.integers(width // 12, width // 6))
        h = int(rng.integers(height // 6, height // 2))
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(img, (x, height // 2 - h), (x + w, height // 2), colour, -1)
    texture = rng.normal(0, 6, (height, width, 1)).astype(np.int16)
    return np.clip(img.astype(np.int16) + texture, 0, 255).astype(np.uint8)


def _moving(sprite: np.ndarray, width: int, height: int, fps: int, seconds: float,
            start_s: float = 1.0, cross_s: float = 3.0) -> list[np.ndarray]:
    bg = background(width, height)
    sh, sw = sprite.shape[:2]
    y = height - sh - height // 20
    frames = []
    for i in range(int(fps * seconds)):
        t = i / fps
        frame = bg.copy()
        if start_s <= t <= start_s + cross_s:
            x = int((t - start_s) / cross_s * (width - sw))
            frame[y:y + sh, x:x + sw] = sprite
        frames.append(frame)
    return frames


def render_mover(width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    """A person-sized dark block walking across."""
    h = int(height * 0.45)
    sprite = np.full((h, int(h * 0.4), 3), 35, np.uint8)
    cv2.rectangle(sprite, (0, 0), (sprite.shape[1] - 1, h // 5), (60, 80, 160), -1)
    return _moving(sprite, width, height, fps, seconds)


def render_astronaut(width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    """A real photo of a person moving across the background."""
    side = int(height * 0.7)
    sprite = cv2.resize(cv2.imread(str(ASTRONAUT)), (side, side), interpolation=cv2.INTER_AREA)
    return _moving(sprite, width, height, fps, seconds, cross_s=4.0)


def render_brightness(width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    """Lights switched: the whole picture jumps brighter, then back."""
    bg = background(width, height)
    bright = cv2.convertScaleAbs(bg, alpha=1.3, beta=45)
    return [bright if seconds / 3 <= i / fps < 2 * seconds / 3 else bg for i in range(int(fps * seconds))]


def render_noise(width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    """A still scene through a noisy night sensor, plus rain streaks."""
    bg = background(width, height).astype(np.int16)
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(int(fps * seconds)):
        noisy = bg + rng.normal(0, 22, bg.shape).astype(np.int16)
        for _ in range(40):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height - 12))
            noisy[y:y + 12, x] += 60
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


SCENES = {
    s.name: s for s in (
        Scene("mover", True, False, render_mover),
        Scene("astronaut", True, True, render_astronaut),
        Scene("brightness", False, False, render_brightness),
        Scene("noise", False, False, render_noise),
    )
}


def write_raw(frames: list[np.ndarray], path: Path) -> Path:
    """Frames as raw BGR bytes back to back: what the RTSP test server loops over."""
    with open(path, "wb") as f:
        for frame in frames:
            f.write(np.ascontiguousarray(frame).tobytes())
    return path
