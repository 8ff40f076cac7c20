"""When the box cannot keep up: every frame is still decoded, the camera analyses fewer, and says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.camera.config import CameraConfig
from drivers.camera.pace import Pace
from drivers.camera.worker import WorkerSpec
from tests.camera.servers import RtspServer
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_pace_lowers_the_analysed_rate_while_decoding_lags_and_restores_it() -> None:
    pace = Pace(5.0)
    t = 0.0
    for i in range(50):  # 15 fps stream decoded in real time
        t = i / 15
        pace.observe(t, i / 15)
    assert pace.fps == 5.0 and pace.reason is None
    for i in range(50, 200):  # decoding at half speed: the stream clock falls behind ours
        t += 2 / 15
        pace.observe(t, i / 15)
    assert pace.fps < 5.0 and "behind the stream" in (pace.reason or "") and pace.lowered >= 1
    base = t - 200 / 15
    for i in range(200, 600):  # keeping up again
        t = base + i / 15
        pace.observe(t, i / 15)
    assert pace.fps == 5.0 and pace.reason is None


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[dict[str, Any]]]]:
    """A real worker on a real 720p/15 stream; its heartbeats collected as they come."""
    srv = RtspServer(tmp_path, "walker@1", 1280, 720, 15, seconds=7, encoded=True).start()
    cam = CameraConfig(name="gate", rtsp_url=srv.url, detect={"enabled": False})
    proc = subprocess.Popen([sys.executable, "-m", "drivers.camera.worker"], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(WorkerSpec(cam, srv.url, "UTC", 5, 5, 0.5, 4, 1.0).to_json().encode() + b"\n")
    proc.stdin.flush()
    beats: list[dict[str, Any]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("t") == "health":
                beats.append(msg)

    threading.Thread(target=read, daemon=True).start()
    try:
        yield proc, beats
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(10)
        srv.stop()


def test_a_worker_that_falls_behind_decodes_everything_and_analyses_less(
        worker: tuple[subprocess.Popen[bytes], list[dict[str, Any]]]) -> None:
    proc, beats = worker
    wait_until(lambda: any(b["input_fps"] >= 12 and b["analysed_fps"] >= 4 for b in beats), timeout=15,
               what="frames decoded and analysed at the configured rate")
    assert all(b["analysis_lowered"] is None for b in beats)
    os.kill(proc.pid, signal.SIGSTOP)  # the box's cores taken: the stream runs on, this camera does not
    time.sleep(3.0)
    os.kill(proc.pid, signal.SIGCONT)
    seen = len(beats)
    lowered = wait_until(lambda: next((b for b in beats[seen:] if b["analysis_lowered"]), None), timeout=10,
                         what="the lowered analysis reported")
    assert "behind the stream" in lowered["analysis_lowered"] and lowered["analysis_fps"] < 5
    # nothing was dropped from decoding: the frames that waited are decoded faster than real time
    wait_until(lambda: any(b["input_fps"] > 20 for b in beats[seen:]), timeout=5, what="the backlog decoded")
