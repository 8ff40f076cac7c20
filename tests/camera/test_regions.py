"""The detector looks at a square crop of the full-resolution frame around what moves (and what is tracked):
the crop's geometry, what it finds that the whole frame misses, and the calls saved once everything is confirmed."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from drivers.camera.analyzer import Analyzer
from drivers.camera.config import CameraConfig, DetectConfig
from drivers.camera.detectors import DarknetDetector, crop_input_size, merge_regions, square_crop
from drivers.camera.events import EventOut
from tests.camera.photos import region_set
from tests.camera.scenes import SCENES
from tests.camera.traffic_scenes import ColourDetector, Mover, render

FPS = 5


def test_square_crop_covers_the_regions_inside_the_frame() -> None:
    x, y, w, h = square_crop([(1200, 600, 50, 100)], 1280, 720, 256)  # near the bottom-right corner
    assert w == h == 256 and x + w == 1280 and y + h == 720
    assert square_crop([(100, 100, 40, 80), (500, 300, 60, 120)], 1280, 720, 256) == (100, 30, 460, 460)
    assert square_crop([(0, 0, 600, 50), (700, 0, 100, 50)], 1280, 720, 256) is None  # wider than the frame is high
    assert square_crop([], 1280, 720, 256) is None
    assert square_crop([(10, 10, 30, 30)], 320, 180, 256) == (0, 0, 180, 180)  # capped by a small frame


def test_crop_input_size_never_makes_objects_smaller_than_the_whole_frame() -> None:
    cfg = DetectConfig()  # input_size 416, region_size 256
    assert crop_input_size(720, 1280, 720, cfg) == 256  # 256/720 > 416/1280: still more pixels per object
    assert crop_input_size(576, 704, 576, cfg) == 416  # 4:3: 256/576 < 416/704
    assert crop_input_size(300, 704, 576, cfg) == 256
    with pytest.raises(ValueError, match="region_size"):
        DetectConfig(region_size=100)


@pytest.fixture(scope="module")
def looked() -> dict[str, tuple[list, list]]:
    det = DarknetDetector(DetectConfig())
    det.warm_up()  # what the worker does at start
    nets = dict(det.nets)
    assert sorted(nets) == [256, 416]
    out = {}
    for case in region_set():
        regions = merge_regions([case.region], 1280, 720)
        out[case.name] = (det.detect(case.image, regions), det.detect(case.image, []))
    assert det.nets == nets  # one network per input side, made once: crops and whole frames never re-plan
    return out


def test_crop_finds_small_people_and_cars_the_whole_frame_misses(looked: dict[str, tuple[list, list]]) -> None:
    cases = {c.name: c for c in region_set()}
    crop_hits = {n for n, (dets, _) in looked.items() if any(d.label == cases[n].label for d in dets)}
    whole_hits = {n for n, (_, dets) in looked.items() if any(d.label == cases[n].label for d in dets)}
    assert {"person_90px", "car_60px", "car_100px"} <= crop_hits - whole_hits
    assert whole_hits <= crop_hits  # nothing the whole frame found is lost
    for name in crop_hits:  # boxes come back in frame pixels, on the pasted object
        x, y, w, h = cases[name].region
        best = max(looked[name][0], key=lambda d: d.score)
        bx, by, bw, bh = best.box
        assert x - w / 2 <= bx + bw / 2 <= x + 1.5 * w and y - h / 2 <= by + bh / 2 <= y + 1.5 * h, (name, best)
    false_alarms = [n for n, (dets, _) in looked.items() if cases[n].label is None and dets]
    assert false_alarms == []


def test_a_vehicle_standing_still_stays_in_view_while_something_else_moves() -> None:
    """Crops follow motion; a truck standing in a stop zone stops being motion once the background has learnt it,
    so its track must keep it in the detector's view when something moves elsewhere."""
    zone = [(0.0, 0.6), (0.35, 0.6), (0.35, 1.0), (0.0, 1.0)]
    movers = (
        Mover("truck", ((0.05, 0.95), (0.15, 0.95)), 0.5, 1.5),  # drives in...
        Mover("truck", ((0.15, 0.95), (0.15, 0.95)), 1.5, 14.0),  # ...and stands
        Mover("motorcycle", ((0.6, 0.3), (0.95, 0.3)), 8.0, 13.0),  # far away, once the truck is no motion
    )
    cam = CameraConfig(name="spot", rtsp_url="rtsp://127.0.0.1/x",
                       detect={"interval_s": 0.2, "still_interval_s": 0.4},
                       traffic={"stop_zones": [{"name": "gate", "polygon": zone, "stopped_after_s": 9}],
                                "track_ttl_s": 1.5})
    detector = ColourDetector()
    an = Analyzer(cam, ZoneInfo("UTC"), detector=detector)  # type: ignore[arg-type]
    out = []
    for i, frame in enumerate(render(movers, 1280, 720, FPS, 14)):
        out += an.process(frame, i / FPS, 1_700_000_000 + i / FPS)
    assert any(w < 1280 for _, _, w, _ in detector.looked), "the detector never looked at a crop"
    stopped = [o for o in out if isinstance(o, EventOut) and o.kind == "vehicle_stopped"]
    assert len(stopped) == 1 and stopped[0].data["class"] == "truck"
    assert 10.4 <= stopped[0].ts - 1_700_000_000 <= 11.5  # stood from 1.5 s, limit 9 s: its track was never lost


def test_confirmed_objects_need_fewer_detector_calls_and_give_the_same_events() -> None:
    def run(confirmed_interval_s: float) -> tuple[int, list[tuple[str, str]]]:
        cam = CameraConfig(name="yard", rtsp_url="rtsp://127.0.0.1/x",
                           detect={"classes": ["person"], "confirmed_interval_s": confirmed_interval_s})
        an = Analyzer(cam, ZoneInfo("UTC"))
        out = []
        for i, frame in enumerate(SCENES["player"].render(640, 360, FPS, 8)):
            out += an.process(frame, i / FPS, 1_700_000_000 + i / FPS)
        out += an.flush(9.0, 1_700_000_009)
        return an.detector_calls, [(o.kind, o.phase) for o in out if isinstance(o, EventOut)]

    capped, events = run(2.0)
    every, same = run(0.5)  # = interval_s: no cap
    assert events == same and ("person", "start") in events and ("person", "end") in events
    assert capped <= every / 2
