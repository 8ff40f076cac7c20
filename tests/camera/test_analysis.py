"""Motion, detection and events on drawn and real-photo scenes, without a network (fast)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from agent.logs import KvLogger
from drivers.camera.analyzer import Analyzer
from drivers.camera.config import ArmWindow, CameraConfig, DetectConfig, StorageConfig
from drivers.camera.detectors import DetectorError, OnnxDetector, merge_regions, parse_yolo
from drivers.camera.events import EventOut, SnapshotOut
from drivers.camera.snapshots import SnapshotStore
from drivers.camera.storage import Storage
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
def player() -> tuple[list[EventOut], list]:
    return run_scene("player")


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


def test_person_detected_on_player(player: tuple[list[EventOut], list]) -> None:
    events, snaps = player
    kinds = [(e.kind, e.phase) for e in events]
    assert ("motion", "start") in kinds and ("person", "start") in kinds and ("person", "end") in kinds
    person = next(e for e in events if e.kind == "person" and e.phase == "start")
    motion = next(e for e in events if e.kind == "motion" and e.phase == "start")
    assert person.data["motion_id"] == motion.event_id and person.data["score"] >= 0.35
    assert {s.kind for s in snaps} == {"motion", "person"}
    assert person.data["reason"].startswith("yolo saw person") and "travelled" in motion.data["reason"]
    assert not any(e.kind == "vehicle" for e in events)


def test_car_gives_a_vehicle_event_not_a_person() -> None:
    events, snaps = run_scene("car")
    vehicle = [e for e in events if e.kind == "vehicle"]
    assert [e.data["phase"] for e in vehicle] == ["start", "end"] and vehicle[0].data["classes"] == ["car"]
    assert not any(e.kind == "person" for e in events)
    assert "vehicle" in {s.kind for s in snaps}


@pytest.mark.parametrize("scene", ["brightness", "noise", "sway", "rain"])
def test_light_jump_noise_sway_and_rain_fire_nothing(scene: str) -> None:
    events, _ = run_scene(scene, seconds=12)
    assert events == []


def test_sway_fires_without_the_travel_rule() -> None:
    """The sway scene does move: only requiring a blob to travel keeps it quiet (so the test above can fail)."""
    cam = CameraConfig(name="test", rtsp_url="rtsp://127.0.0.1/x", motion={"min_travel_pct": 0})
    events, _ = run_scene("sway", cam, seconds=12)
    assert ("motion", "start") in [(e.kind, e.phase) for e in events]


def test_classes_limit_what_is_reported() -> None:
    cam = CameraConfig(name="test", rtsp_url="rtsp://127.0.0.1/x", detect={"classes": ["person"]})
    events, _ = run_scene("car", cam)
    assert not any(e.kind == "vehicle" for e in events) and ("motion", "start") in [(e.kind, e.phase) for e in events]


def test_zones_limit_where_objects_count() -> None:
    cam = CameraConfig(name="test", rtsp_url="rtsp://127.0.0.1/x",
                       detect={"zones": [[(0, 0), (1, 0), (1, 0.3), (0, 0.3)]]})  # the sky only
    events, _ = run_scene("player", cam)
    assert not any(e.kind == "person" for e in events)


@pytest.mark.parametrize("damage", ["missing", "corrupt", "manifest"])
def test_missing_or_corrupt_model_falls_back_to_hog(tmp_path: Path, damage: str) -> None:
    import shutil

    from drivers.camera.models import default_dir

    models = tmp_path / "models"
    shutil.copytree(default_dir(), models)
    if damage == "missing":
        (models / "yolov3-tiny.weights").unlink()
    elif damage == "corrupt":
        with open(models / "yolov3-tiny.weights", "r+b") as f:
            f.seek(1000)
            f.write(b"\x00" * 16)
    else:
        (models / "manifest.json").write_text("{not json")
    cam = CameraConfig(name="test", rtsp_url="rtsp://127.0.0.1/x", detect={"model_dir": models})
    an = Analyzer(cam, ZoneInfo("UTC"))
    assert an.detector is not None and an.detector.name == "hog"
    assert an.warning is not None and "using HOG" in an.warning
    assert {"missing": "missing", "corrupt": "corrupt", "manifest": "manifest"}[damage] in an.warning


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
    v5[0, 1, :5] = [50, 50, 10, 10, 0.9]  # a motorcycle (COCO 3)
    v5[0, 1, 5 + 3] = 0.8
    found = parse_yolo(v5, 0.5)
    assert found == [((80, 60, 40, 80), pytest.approx(0.855, abs=1e-3), 0), ((45, 45, 10, 10),
                                                                           pytest.approx(0.72, abs=1e-3), 3)]
    v8 = np.zeros((1, 84, 200), np.float32)
    v8[0, :5, 2] = [300, 200, 60, 100, 0.8]
    assert parse_yolo(v8, 0.5) == [((270, 150, 60, 100), pytest.approx(0.8), 0)]


def test_onnx_model_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ONNX model file not found"):
        DetectConfig(detector="onnx", model=tmp_path / "nope.onnx")
    model = tmp_path / "yolo.onnx"
    model.write_bytes(b"not a model")
    cfg = DetectConfig(detector="onnx", model=model)
    model.unlink()
    with pytest.raises(DetectorError, match="not found"):
        OnnxDetector(cfg)


def test_snapshot_store_is_bounded_and_tracks_pending(tmp_path: Path) -> None:
    storage = Storage(tmp_path, StorageConfig(budget_bytes=1024 * 1024, min_free_bytes=0), KvLogger("test"))
    store = SnapshotStore(tmp_path / "s", storage)
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
