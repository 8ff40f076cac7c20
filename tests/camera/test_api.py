"""The cameras face: live state and event pictures by name, never a path outside the camera's own folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

from drivers.camera import api as camera


def _shot(root: Path, cam: str, event_id: str, suffix: str = ".jpg") -> Path:
    d = root / camera.SECTION / camera.SNAPSHOTS / cam
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{time.time_ns():020d}_{event_id}{suffix}"
    p.write_bytes(b"\xff\xd8" + event_id.encode() + b"\xff\xd9")
    return p


def test_latest_and_event_pictures(tmp_path: Path) -> None:
    assert camera.latest_snapshot(tmp_path, "cong") is None
    first = _shot(tmp_path, "cong", "ev_1")
    pending = _shot(tmp_path, "cong", "ev2", ".pending.jpg")
    assert camera.latest_snapshot(tmp_path, "cong") == pending
    assert camera.event_snapshot(tmp_path, "cong", "ev_1") == first
    assert camera.event_snapshot(tmp_path, "cong", "ev2") == pending
    assert camera.event_snapshot(tmp_path, "cong", "ev3") is None
    for cam, ev in (("..", "ev_1"), ("../cong", "ev_1"), ("cong", "../x"), ("cong", "ev_1.jpg")):
        assert camera.event_snapshot(tmp_path, cam, ev) is None
    assert camera.latest_snapshot(tmp_path, "..") is None


def test_live_state_and_the_camera_an_event_is_about(tmp_path: Path) -> None:
    assert camera.live_state(tmp_path) is None
    (tmp_path / camera.SECTION).mkdir()
    (tmp_path / camera.SECTION / camera.STATE_FILE).write_text(json.dumps({"cameras": {"cong": {"online": True}}}))
    assert camera.live_state(tmp_path) == {"cameras": {"cong": {"online": True}}}
    assert camera.camera_of({"camera": "cong"}) == "cong" and camera.camera_of({"camera": 3}) is None
