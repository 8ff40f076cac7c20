"""Motion, person detection and events on synthetic scenes, without a network (fast)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from drivers.camera.analyzer import Analyzer
from drivers.camera.config import ArmWindow, CameraConfig, PersonConfig
from drivers.camera.events import EventOut, SnapshotOut
from drivers.camera.person import OnnxPersonDetector, PersonModelError, merge_regions, parse_yolo
from drivers.camera.snapshots import SnapshotStore
from tests.camera.scenes import SCENES

FPS = 5


def run_scene(scene: str, cam: CameraConfig | None = None, seconds: float = 8.0) -> tuple[list[EventOut], list]:
    cam = cam or CameraConfig(name="test", rtsp_url="rtsp://127.0.0.1/x")
    an = Analyzer(cam, ZoneInfo("UTC"))
    out = []
    frames = SCENES[scene].render(640, 360, FPS, seconds)
    for i, frame in enumerate(frames):
        out += an.process(frame, i / FPS, 1_700_000_000 + i / FPS)
    out += an.flush(len(frames) / FPS, 1_700_000_000 + len(frames) / FPS)
    return [o for o in out if isinstance(o, EventOut)], [o for o in out if isinstance(o, SnapshotOut)]


@pytest.fixture(scope="module")
def astronaut() -> tuple[list[EventOut], list]:
    return run_scene("astronaut")


def test_mover_gives_one_motion_event_with_start_and_end() -> None:
    events, snaps = run_scene("mover")
    assert [(e.kind, e.phase) for e in events] == [("motion", "start"), ("motion", "end")]
    start, end = events
    assert start.event_id == end.event_id and start.data["camera"] == "test"
    assert 2.0 <= end.data["duration_s"] <= 4.5 and end.data["score"] > 0.5
    box = start.data["boxes"][0]
    assert all(0 <= v <= 1 for v in box)
    assert len(snaps) == 1 and snaps[0].event_id == start.event_id and snaps[0].jpeg[:2] == b"\xff\xd8"
    assert not any(e.kind == "person" for e in events)


def test_person_detected_on_astronaut(astronaut: tuple[list[EventOut], list]) -> None:
    events, snaps = astronaut
    kinds = [(e.kind, e.phase) for e in events]
    assert ("motion", "start") in kinds and ("person", "start") in kinds and ("person", "end") in kinds
    person = next(e for e in events if e.kind == "person" and e.phase == "start")
    motion = next(e for e in events if e.kind == "motion" and e.phase == "start")
    assert person.data["motion_id"] == motion.event_id and person.data["score"] >= 0.4
    assert {s.kind for s in snaps} == {"motion", "person"}


@pytest.mark.parametrize("scene", ["brightness", "noise"])
def test_light_jump_and_noise_fire_nothing(scene: str) -> None:
    events, _ = run_scene(scene)
    assert events == []


def test_mask_hides_the_mover() -> None:
    cam = CameraConfig(name="test", rtsp_url="rtsp://127.0.0.1/x",
                       motion={"masks": [[(0, 0.3), (1, 0.3), (1, 1), (0, 1)]]})
    events, _ = run_scene("mover", cam)
    assert events == []


def test_disarmed_camera_reports_nothing() -> None:
    # 1_700_000_000 is Tuesday 22:13 UTC: arm only on Sundays
    cam = CameraConfig(name="test", rtsp_url="rtsp://127.0.0.1/x", armed=[{"days": ["sun"]}])
    events, _ = run_scene("mover", cam)
    assert events == []


def test_arm_window_wraps_midnight() -> None:
    night = ArmWindow(days=["mon"], start=dt.time(22, 0), end=dt.time(6, 0))
    assert night.contains(dt.datetime(2024, 1, 1, 23, 0))  # Monday 23:00
    assert night.contains(dt.datetime(2024, 1, 2, 5, 0))  # Tuesday 05:00, the window began Monday
    assert not night.contains(dt.datetime(2024, 1, 2, 12, 0))
    assert not night.contains(dt.datetime(2024, 1, 2, 23, 0))


def test_merge_regions_joins_overlaps_and_clips() -> None:
    regions = merge_regions([(10, 10, 20, 20), (25, 25, 20, 20), (200, 200, 5, 5)], 220, 220)
    assert regions[0][0] >= 0 and len(regions) == 2
    assert all(x + w <= 220 and y + h <= 220 for x, y, w, h in regions)


def test_parse_yolo_v5_and_v8_layouts() -> None:
    v5 = np.zeros((1, 200, 85), np.float32)  # real models have thousands of rows
    v5[0, 0, :6] = [100, 100, 40, 80, 0.9, 0.95]  # a person
    v5[0, 1, :6] = [50, 50, 10, 10, 0.9, 0.01]  # something else
    found = parse_yolo(v5, 0, 0.5)
    assert found == [((80, 60, 40, 80), pytest.approx(0.855, abs=1e-3))]
    v8 = np.zeros((1, 84, 200), np.float32)
    v8[0, :5, 2] = [300, 200, 60, 100, 0.8]
    assert parse_yolo(v8, 0, 0.5) == [((270, 150, 60, 100), pytest.approx(0.8))]


def test_onnx_model_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ONNX model file not found"):
        PersonConfig(detector="onnx", model=tmp_path / "nope.onnx")
    model = tmp_path / "yolo.onnx"
    model.write_bytes(b"not a model")
    cfg = PersonConfig(detector="onnx", model=model)
    model.unlink()
    with pytest.raises(PersonModelError, match="not found"):
        OnnxPersonDetector(cfg)


def test_snapshot_store_is_bounded_and_tracks_pending(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s", 1024 * 1024)
    blob = b"\xff\xd8" + b"x" * (300 * 1024)
    for i in range(5):
        store.put(f"ev{i}", blob, pending=i == 4)
    assert store.total_bytes() <= 1024 * 1024
    names = sorted(p.name for p in (tmp_path / "s").glob("*.jpg"))
    assert len(names) == 3 and "ev0" not in "".join(names)
    [(eid, path)] = store.pending()
    assert eid == "ev4"
    store.mark_sent(path)
    assert store.pending() == []
