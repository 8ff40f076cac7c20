"""Camera scenes with known truth: movers (drawn, or real photo cut-outs) that must fire; light jumps, sensor
noise, rain and swaying branches that must not; objects crossing a counting line a known number of times."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from tests.camera.photos import CAR_BOX, MESSI_BOX, WALKER_BOX, crop


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
        if not start_s <= t <= start_s + cross_s:
            frames.append(bg)  # the empty street: one picture shared, not a copy per frame
            continue
        frame = bg.copy()
        x = int((t - start_s) / cross_s * (width - sw))
        frame[y:y + sh, x:x + sw] = sprite
        frames.append(frame)
    return frames


def render_mover(width: int, height: int, fps: int, seconds: float, start_s: float = 1.0) -> list[np.ndarray]:
    """A person-sized dark block walking across."""
    h = int(height * 0.45)
    sprite = np.full((h, int(h * 0.4), 3), 35, np.uint8)
    cv2.rectangle(sprite, (0, 0), (sprite.shape[1] - 1, h // 5), (60, 80, 160), -1)
    return _moving(sprite, width, height, fps, seconds, start_s)


def render_player(width: int, height: int, fps: int, seconds: float, start_s: float = 1.0) -> list[np.ndarray]:
    """A real photo of a person (the footballer of messi5.jpg) moving across the background."""
    sprite = crop("messi5.jpg", MESSI_BOX, int(height * 0.6))
    return _moving(sprite, width, height, fps, seconds, start_s, cross_s=4.0)


def render_walker(width: int, height: int, fps: int, seconds: float, start_s: float = 1.0) -> list[np.ndarray]:
    """A real photo of one man, whole and alone before a plain wall (no crowd behind him), walking across."""
    sprite = crop("basketball1.png", WALKER_BOX, int(height * 0.6))
    return _moving(sprite, width, height, fps, seconds, start_s, cross_s=4.0)


def render_car(width: int, height: int, fps: int, seconds: float, start_s: float = 1.0) -> list[np.ndarray]:
    """A real photo of a car driving across."""
    sprite = crop("licenseplate_motion.jpg", CAR_BOX, int(height * 0.45))
    return _moving(sprite, width, height, fps, seconds, start_s, cross_s=4.0)


def render_sway(width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    """A leafy branch and a flag swinging in the wind (0.4–0.7 Hz, ±4 % of the width), nothing going anywhere."""
    bg = background(width, height)
    rng = np.random.default_rng(11)
    leaves = [(int(rng.integers(-width // 14, width // 14)), int(rng.integers(-height // 8, height // 8)),
               int(rng.integers(width // 60, width // 30))) for _ in range(40)]
    frames = []
    for i in range(int(fps * seconds)):
        t = i / fps
        frame = bg.copy()
        sway = 0.04 * width * np.sin(2 * np.pi * 0.5 * t)
        cx, cy = int(width * 0.2 + sway), int(height * 0.3)
        cv2.line(frame, (int(width * 0.05), int(height * 0.05)), (cx, cy), (30, 60, 40), max(2, width // 120))
        for dx, dy, r in leaves:
            cv2.circle(frame, (cx + dx, cy + dy), r, (40, 110, 50), -1)
        flap = 0.04 * width * np.sin(2 * np.pi * 0.7 * t + 1.0)
        pole = (int(width * 0.8), int(height * 0.15))
        tip = (int(pole[0] + width // 10 + flap * 0.3), pole[1] + height // 10)
        pts = np.array([pole, (pole[0] + width // 10, int(pole[1] + height * 0.03 + flap * 0.3)), tip,
                        (pole[0], pole[1] + height // 12)], np.int32)
        cv2.line(frame, pole, (pole[0], height // 2), (200, 200, 200), max(2, width // 200))
        cv2.fillPoly(frame, [pts], (30, 30, 200))
        frames.append(frame)
    return frames


def render_rain(width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    """Heavy rain: hundreds of bright streaks falling across a still street, darker and blurred by water."""
    bg = cv2.convertScaleAbs(background(width, height), alpha=0.8).astype(np.int16)
    rng = np.random.default_rng(5)
    frames = []
    length = max(6, height // 25)
    for _ in range(int(fps * seconds)):
        wet = bg + rng.normal(0, 8, bg.shape).astype(np.int16)
        for _ in range(400):
            x, y = int(rng.integers(0, width - 3)), int(rng.integers(0, height - length))
            cv2.line(wet, (x, y), (x + 2, y + length), (70, 70, 70), 1)
        frames.append(np.clip(wet, 0, 255).astype(np.uint8))
    return frames


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
        Scene("player", True, True, render_player),
        Scene("car", True, False, render_car),
        Scene("walker", True, True, render_walker),
        Scene("brightness", False, False, render_brightness),
        Scene("noise", False, False, render_noise),
        Scene("sway", False, False, render_sway),
        Scene("rain", False, False, render_rain),
    )
}


def render_scene(spec: str, width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    """A scene by name; `player@6` is the player scene with its mover entering at 6 s (mover, player, car)."""
    name, _, start = spec.partition("@")
    if start:
        render: Callable[..., list[np.ndarray]] = SCENES[name].render
        return render(width, height, fps, seconds, start_s=float(start))
    return SCENES[name].render(width, height, fps, seconds)


def write_raw(frames: list[np.ndarray], path: Path) -> Path:
    """Frames as raw BGR bytes back to back: what the RTSP test server loops over."""
    with open(path, "wb") as f:
        for frame in frames:
            f.write(np.ascontiguousarray(frame).tobytes())
    return path
