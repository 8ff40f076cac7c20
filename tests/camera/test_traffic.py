"""Traffic counts and stop zones through the whole analyzer: exact counts on drawn traffic, a real car photo
counted by the real detector, vehicle_stopped only for a vehicle that stands."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from drivers.camera.analyzer import Analyzer
from drivers.camera.config import CameraConfig
from drivers.camera.detectors import Detection
from drivers.camera.events import CountOut, EventOut
from drivers.camera.traffic import Tracker, crossing, inside
from tests.camera.scenes import SCENES
from tests.camera.traffic_scenes import LINE, TRAFFIC, TRUTH, ColourDetector, Mover, render

FPS = 5
W, H = 640, 360


def run(cam: CameraConfig, frames: list, detector: object | None = None) -> list:
    an = Analyzer(cam, ZoneInfo("UTC"), detector=detector)  # type: ignore[arg-type]
    out = []
    for i, frame in enumerate(frames):
        out += an.process(frame, i / FPS, 1_700_000_000 + i / FPS)
    return out + an.flush(len(frames) / FPS, 1_700_000_000 + len(frames) / FPS)


def counts(out: list) -> dict[tuple[str, str, str], int]:
    found: dict[tuple[str, str, str], int] = {}
    for o in out:
        if isinstance(o, CountOut):
            found[(o.line, o.label, o.direction)] = found.get((o.line, o.label, o.direction), 0) + 1
    return found


def test_crossing_geometry() -> None:
    a, b = (0.0, 10.0), (100.0, 10.0)
    assert crossing((50, 0), (50, 20), a, b) == 1  # downwards = to the right of a→b on the picture
    assert crossing((50, 20), (50, 0), a, b) == -1
    assert crossing((150, 0), (150, 20), a, b) == 0  # beyond the end
    assert crossing((50, 0), (50, 10), a, b) == 0  # onto the line from the left: not yet across
    assert crossing((50, 10), (50, 20), a, b) == 1  # ...and off it to the right: across, once
    assert crossing((50, 20), (50, 10), a, b) == -1 and crossing((50, 10), (50, 0), a, b) == 0
    assert crossing((50, 0), (60, 5), a, b) == 0
    assert inside((5, 5), [(0, 0), (10, 0), (10, 10), (0, 10)]) and not inside((15, 5), [(0, 0), (10, 0), (10, 10)])


def test_tracker_counts_each_object_once_even_when_it_dithers() -> None:
    from drivers.camera.config import TrafficConfig

    t = Tracker(TrafficConfig(lines=[{"name": "l", "points": [[0, 0.5], [1, 0.5]]}]), 100, 100)
    found = []
    for i, y in enumerate([30, 45, 55, 48, 56, 70]):  # crosses down, back up a little, down again
        found += t.update([Detection((40, y - 10, 10, 10), 0.9, "car")], i * 0.2)[0]
    assert [(c.label, c.direction) for c in found] == [("car", "in")]


def test_a_car_long_after_the_last_one_is_a_new_track_and_counts_again() -> None:
    from drivers.camera.config import TrafficConfig

    t = Tracker(TrafficConfig(lines=[{"name": "mid", "points": [[0.5, 0], [0.5, 1]]}]), 1280, 720)
    found = []
    for i, x in enumerate(range(100, 800, 150)):  # a big car drives across and is last seen right of the line
        found += t.update([Detection((x, 350, 500, 330), 0.9, "car")], i * 0.4)[0]
    # 30 s of nothing (no motion: no detector calls), then the next car comes in at the left, within the old
    # one's reach, and drives across
    for i, x in enumerate(range(100, 1000, 150)):
        found += t.update([Detection((x, 350, 500, 330), 0.9, "car")], 30 + i * 0.4)[0]
    assert [(c.label, c.direction) for c in found] == [("car", "out"), ("car", "out")]


@pytest.mark.parametrize("fps", [5, 3])
def test_drawn_traffic_gives_exact_counts_per_class_and_direction(fps: int) -> None:
    cam = CameraConfig(name="spot", rtsp_url="rtsp://127.0.0.1/x", detect_fps=fps,
                       detect={"interval_s": 0.1},
                       traffic={"lines": [{"name": "l1", "points": LINE}]})
    frames = render(TRAFFIC, W, H, fps, 12)
    an = Analyzer(cam, ZoneInfo("UTC"), detector=ColourDetector())
    out = []
    for i, frame in enumerate(frames):
        out += an.process(frame, i / fps, 1_700_000_000 + i / fps)
    assert counts(out) == TRUTH


def test_line_classes_filter_the_counts() -> None:
    cam = CameraConfig(name="spot", rtsp_url="rtsp://127.0.0.1/x", detect={"interval_s": 0.1},
                       traffic={"lines": [{"name": "l1", "points": LINE, "classes": ["motorcycle"],
                                           "directions": ["nam", "bac"]}]})
    assert counts(run(cam, render(TRAFFIC, W, H, FPS, 12), ColourDetector())) == {("l1", "motorcycle", "nam"): 2}


def test_real_car_photo_counted_once_by_the_default_detector() -> None:
    cam = CameraConfig(name="spot", rtsp_url="rtsp://127.0.0.1/x", detect={"interval_s": 0.2},
                       traffic={"lines": [{"name": "mid", "points": [[0.5, 0.0], [0.5, 1.0]]}]})
    out = run(cam, SCENES["car"].render(W, H, FPS, 7))
    # the car drives left to right: across the top-to-bottom line from its right side to its left
    assert counts(out) == {("mid", "car", "out"): 1}


def test_vehicle_standing_in_a_stop_zone_raises_one_event() -> None:
    zone = [(0.4, 0.5), (0.8, 0.5), (0.8, 1.0), (0.4, 1.0)]
    movers = (
        Mover("car", ((0.1, 0.9), (0.6, 0.9)), 0.5, 2.0),  # drives in...
        Mover("car", ((0.6, 0.9), (0.6, 0.9)), 2.0, 9.0),  # ...and stands 7 s
        Mover("truck", ((0.3, 0.7), (0.95, 0.7)), 3.0, 5.0),  # drives through without stopping
    )
    frames = render(movers, W, H, FPS, 10)
    cam = CameraConfig(name="spot", rtsp_url="rtsp://127.0.0.1/x",
                       detect={"interval_s": 0.2, "still_interval_s": 0.4},
                       traffic={"stop_zones": [{"name": "gate", "polygon": zone, "stopped_after_s": 3}],
                                "track_ttl_s": 1.5})
    calls: list[float] = []

    class Counting(ColourDetector):
        def detect(self, frame: object, regions: list) -> list:
            calls.append(an.last_call)
            return super().detect(frame, regions)  # type: ignore[arg-type]

    an = Analyzer(cam, ZoneInfo("UTC"), detector=Counting())
    out = []
    for i, frame in enumerate(frames):
        out += an.process(frame, i / FPS, 1_700_000_000 + i / FPS)
    # the car stands and nothing moves from ~5.5 s: the detector still looks every still_interval_s (0.4 s)
    standing = [t for t in calls if 5.6 <= t <= 8.0]
    assert len(standing) >= 5, calls
    stopped = [o for o in out if isinstance(o, EventOut) and o.kind == "vehicle_stopped"]
    assert len(stopped) == 1
    data = stopped[0].data
    assert data["zone"] == "gate" and data["class"] == "car" and data["stopped_s"] >= 3
    assert "stood" in data["reason"] and stopped[0].ts - 1_700_000_000 >= 5.0
