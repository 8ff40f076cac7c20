"""The real-photo evaluation set (tests/camera/data, see its README) plus composites at commune-camera scale.

Each item says whether a person and whether a vehicle is in the picture; precision and recall are per
image ("did the detector say person here?"), which is what decides whether an event fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).with_name("data")
HD = (1280, 720)

# file: (has a person, has a vehicle)
PHOTOS: dict[str, tuple[bool, bool]] = {
    "messi5.jpg": (True, False),
    "basketball1.png": (True, False),
    "vtest_000.jpg": (True, True),  # CCTV: pedestrians, parked vans
    "vtest_250.jpg": (True, True),
    "vtest_450.jpg": (True, True),
    "vtest_700.jpg": (True, True),
    "building.jpg": (False, True),  # a parked car behind the hedge
    "licenseplate_motion.jpg": (False, True),
    "fruits.jpg": (False, False),
    "board.jpg": (False, False),
    "stuff.jpg": (False, False),
    "baboon.jpg": (False, False),
    "home.jpg": (False, False),
    "aero1.jpg": (False, False),
    "leuvenA.jpg": (False, False),
}
MESSI_BOX = (70, 55, 390, 285)  # x, y, w, h of the player in messi5.jpg (arms and ball included)
CAR_BOX = (0, 60, 600, 400)  # the car in licenseplate_motion.jpg
WALKER_BOX = (15, 60, 170, 420)  # the man on the left of basketball1.png, head to feet, before a plain wall


@dataclass(frozen=True)
class Photo:
    name: str
    image: np.ndarray
    person: bool
    vehicle: bool


def load(name: str) -> np.ndarray:
    img = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(DATA / name)
    return img


def street_720p() -> np.ndarray:
    """A real street with nobody in it (Leuven), at 1280×720."""
    return cv2.resize(load("leuvenA.jpg"), HD, interpolation=cv2.INTER_AREA)


def crop(name: str, box: tuple[int, int, int, int], height: int) -> np.ndarray:
    x, y, w, h = box
    part = load(name)[y:y + h, x:x + w]
    return cv2.resize(part, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def paste(canvas: np.ndarray, sprite: np.ndarray, x: int, bottom: int) -> np.ndarray:
    out = canvas.copy()
    h, w = sprite.shape[:2]
    out[bottom - h:bottom, x:x + w] = sprite
    return out


def cctv_720p(name: str, scale: float) -> np.ndarray:
    """A CCTV frame shrunk by scale and set into a 1280×720 street picture: people 40–110 px tall."""
    frame = load(name)
    h = round(HD[1] * scale)
    w = round(frame.shape[1] * h / frame.shape[0])
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    canvas = street_720p()
    y, x = (HD[1] - h) // 2, (HD[0] - w) // 2
    canvas[y:y + h, x:x + w] = small
    return canvas


@cache
def evaluation_set() -> tuple[Photo, ...]:
    photos = [Photo(n, load(n), p, v) for n, (p, v) in PHOTOS.items()]
    street = street_720p()
    photos += [
        Photo("composite_player_180px", paste(street, crop("messi5.jpg", MESSI_BOX, 180), 500, 700), True, False),
        Photo("composite_player_90px", paste(street, crop("messi5.jpg", MESSI_BOX, 90), 800, 690), True, False),
        Photo("composite_car_200px", paste(street, crop("licenseplate_motion.jpg", CAR_BOX, 200), 300, 710),
              False, True),
        Photo("composite_cctv_720p_100", cctv_720p("vtest_250.jpg", 1.0), True, True),
        Photo("composite_cctv_720p_60", cctv_720p("vtest_450.jpg", 0.6), True, True),
        Photo("composite_street_720p", street, False, False),
    ]
    return tuple(photos)


@dataclass(frozen=True)
class RegionCase:
    """A composite with its motion region known (where the object was pasted), as motion would report it."""

    name: str
    image: np.ndarray
    region: tuple[int, int, int, int]
    label: str | None  # what is there: "person", "car", or None for the empty street under the same region


@cache
def region_set() -> tuple[RegionCase, ...]:
    """People 30–180 px and cars 60–200 px tall at commune-camera scale in a 1280×720 street, each also as an
    empty-street negative with the same region: what the detector sees when it looks only where things move."""
    street = street_720p()
    cases = []
    for name, box, label, sizes in (("messi5.jpg", MESSI_BOX, "person", ((30, 600, 600), (60, 200, 680),
                                                                        (90, 800, 690), (180, 500, 700))),
                                    ("licenseplate_motion.jpg", CAR_BOX, "car", ((60, 300, 700), (100, 700, 650),
                                                                                 (200, 300, 710)))):
        for h, x, bottom in sizes:
            sprite = crop(name, box, h)
            region = (x, bottom - h, sprite.shape[1], h)
            cases.append(RegionCase(f"{label}_{h}px", paste(street, sprite, x, bottom), region, label))
            cases.append(RegionCase(f"street_under_{label}_{h}px", street, region, None))
    return tuple(cases)


def precision_recall(found: dict[str, bool], truth: dict[str, bool]) -> tuple[float, float]:
    tp = sum(1 for k, v in found.items() if v and truth[k])
    fp = sum(1 for k, v in found.items() if v and not truth[k])
    positives = sum(1 for v in truth.values() if v)
    return tp / max(1, tp + fp), tp / max(1, positives)
