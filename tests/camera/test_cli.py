"""The technician commands: analyze a video file, grab a snapshot from a configured camera."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import cv2
import pytest

from drivers.camera import cli
from tests.camera.scenes import SCENES, write_raw
from tests.camera.servers import RtspServer


def encode_video(scene: str, path: Path, fps: int = 10) -> Path:
    raw = write_raw(SCENES[scene].render(640, 360, fps, 7), path.with_suffix(".raw"))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "640x360",
                    "-r", str(fps), "-i", str(raw), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(path)], check=True, timeout=60)
    return path


def write_config(tmp_path: Path, cameras: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"site:\n  site_id: '18241'\ncoc:\n  host: 127.0.0.1\ndata_dir: {tmp_path / 'data'}\n"
                    f"cameras:\n{cameras}")
    return path


def test_analyze_prints_events_of_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = encode_video("player", tmp_path / "player.mp4")
    config = write_config(tmp_path, "  devices:\n    - name: cong\n      rtsp_url: rtsp://127.0.0.1:1/x\n"
                                    "      detect_fps: 5\n")
    shots = tmp_path / "shots"
    rc = cli.cmd_analyze(argparse.Namespace(video=video, camera="cong", json=True, snapshots=shots,
                                            config=str(config)))
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["camera"] == "cong" and 30 <= out["frames_analysed"] <= 40  # 7 s at 5 fps
    kinds = [(e["kind"], e["phase"]) for e in out["events"]]
    assert ("motion", "start") in kinds and ("person", "start") in kinds and ("motion", "end") in kinds
    assert len(list(shots.glob("*.jpg"))) == out["snapshots"] >= 2

    rc = cli.cmd_analyze(argparse.Namespace(video=tmp_path / "missing.mp4", camera=None, json=True, snapshots=None,
                                            config=None))
    assert rc == 2


def test_analyze_unknown_camera_exits_2(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    config = write_config(tmp_path, "  devices: []\n")
    with pytest.raises(SystemExit) as exc:
        cli.cmd_analyze(argparse.Namespace(video=video, camera="nope", json=True, snapshots=None, config=str(config)))
    assert exc.value.code == 2


def test_snapshot_grabs_a_picture_with_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv = RtspServer(tmp_path / "scenes", "mover", 320, 180, seconds=3).start()
    try:
        config = write_config(tmp_path, f"  devices:\n    - name: cong\n      rtsp_url: {srv.url}\n"
                                        "      motion:\n        masks: [[[0, 0], [0.5, 0], [0.5, 0.3]]]\n")
        out = tmp_path / "cong.jpg"
        rc = cli.cmd_snapshot(argparse.Namespace(name="cong", output=out, masks=True, config=str(config)))
        assert rc == 0 and "320x180" in capsys.readouterr().out
        img = cv2.imread(str(out))
        assert img.shape == (180, 320, 3)
        b, g, r = (int(v) for v in img[0, 80])  # on the mask's top edge: drawn red
        assert r > 150 and g < 100 and b < 100
    finally:
        srv.stop()
    config = write_config(tmp_path, "  open_timeout_s: 1\n  devices:\n    - name: gone\n"
                                    "      rtsp_url: rtsp://127.0.0.1:9/cam\n")
    assert cli.cmd_snapshot(argparse.Namespace(name="gone", output=None, masks=False, config=str(config))) == 1


@pytest.mark.parametrize("scene, fires", [("sway", False), ("rain", False), ("mover", True), ("car", True)])
def test_analyze_h264_sway_and_rain_stay_quiet_movers_fire_and_each_event_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scene: str, fires: bool) -> None:
    video = encode_video(scene, tmp_path / f"{scene}.mp4")
    rc = cli.cmd_analyze(argparse.Namespace(video=video, camera=None, json=False, snapshots=None, config=None))
    out = capsys.readouterr().out
    assert rc == 0
    starts = [line for line in out.splitlines() if " start " in line]
    assert bool(starts) == fires, out
    if fires:
        assert out.count("why: ") == len(starts) and "travelled" in out
    if scene == "car":
        assert "vehicle" in out and "why: yolo saw car" in out
