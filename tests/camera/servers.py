"""Real servers for the camera tests: a GStreamer RTSP server fed with frames the tests draw."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.camera.scenes import SCENES, write_raw
from tests.support.ports import free_port
from tests.support.procs import stop_process

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class RtspServer:
    """One RTSP mount looping a rendered scene; stop/start/freeze act on the real process."""

    def __init__(self, workdir: Path, scene: str, width: int = 640, height: int = 360, fps: int = 10,
                 seconds: float = 8.0, port: int | None = None) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.raw = workdir / f"{scene}-{width}x{height}-{fps}.raw"
        if not self.raw.exists():
            write_raw(SCENES[scene].render(width, height, fps, seconds), self.raw)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self, timeout: float = 15.0) -> RtspServer:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--raw", str(self.raw), "--width", str(self.width),
             "--height", str(self.height), "--fps", str(self.fps)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if b"READY" not in line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"RTSP server did not start on port {self.port}")
        return self

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            stop_process(self.proc)
        self.proc = None
