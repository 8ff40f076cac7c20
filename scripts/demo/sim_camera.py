"""Demo camera: a local GStreamer RTSP stream (rtsp://127.0.0.1:18554/cam) where a person walks by.

start(workdir) renders the scene once (a photo of a person crossing a street, 640x360 at 10 fps, looping
every 16 s) and serves it with the test suite's RTSP server under Debian's python3 (python3-gi), so the
demo's `cameras` section sees motion and person events and sends their snapshots to the COC.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from scripts.demo.sim_network import SCENE_ENV
from tests.support.procs import stop_process

ROOT = Path(__file__).resolve().parents[2]
PORT = 18554  # demo.yaml: rtsp://127.0.0.1:18554/cam
# the person crosses in 4 s; the 11 s of empty street after that outlast the motion background's ghost
# (learn_rate) plus end_after_s, so every pass ends its event and its snapshot reaches the COC
WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 10, 16.0


def start(workdir: Path) -> Callable[[], None]:
    sys.path.insert(0, str(ROOT))
    from tests.camera.scenes import SCENES, write_raw

    camdir = workdir / "camera"
    camdir.mkdir(parents=True, exist_ok=True)
    scene = "noise" if os.environ.get(SCENE_ENV) == "quiet" else "player"  # quiet: an empty street, sensor noise
    raw = camdir / f"street-{scene}.raw"
    if not raw.exists() or raw.stat().st_size != WIDTH * HEIGHT * 3 * int(FPS * SECONDS):
        write_raw(SCENES[scene].render(WIDTH, HEIGHT, FPS, SECONDS), raw)
    log = open(camdir / "rtsp-server.log", "ab")
    proc = subprocess.Popen(
        ["/usr/bin/python3", str(ROOT / "tests" / "camera" / "rtsp_server.py"), "--port", str(PORT), "--raw", str(raw),
         "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", str(FPS)],
        stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    assert proc.stdout is not None
    if b"READY" not in proc.stdout.readline():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"RTSP server did not start on 127.0.0.1:{PORT} (see {camdir / 'rtsp-server.log'})")

    def stop() -> None:
        if proc.poll() is None:
            stop_process(proc)
        log.close()

    return stop
