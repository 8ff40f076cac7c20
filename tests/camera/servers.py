"""Real servers for the camera tests: a GStreamer RTSP server fed with frames the tests draw."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import numpy as np

from tests.camera.scenes import render_scene, write_raw
from tests.support.ports import free_port
from tests.support.procs import stop_process

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def encode_h264(frames: list[np.ndarray], fps: int, path: Path) -> Path:
    """BGR frames as the --h264 server wants them: Annex B, an AUD before each picture, SPS/PPS and a key frame
    every second (so a second can be repeated or looped), no B-frames; what a camera's substream looks like."""
    h, w = frames[0].shape[:2]
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                             "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast",
                             "-tune", "zerolatency", "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0",
                             "-bf", "0", "-x264-params", "aud=1:repeat-headers=1", "-b:v", "1500k",
                             "-pix_fmt", "yuv420p", "-f", "h264", str(path)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for frame in frames:
        proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    proc.stdin.close()
    if proc.wait(60) != 0:
        raise RuntimeError(f"ffmpeg could not encode {path.name}")
    return path


class RtspServer:
    """One RTSP mount looping a rendered scene; stop/start/freeze act on the real process."""

    def __init__(self, workdir: Path, scene: str, width: int = 640, height: int = 360, fps: int = 10,
                 seconds: float = 8.0, port: int | None = None, mounts: dict[str, str] | None = None,
                 encoded: bool = False) -> None:
        """mounts: more paths served by the same process, /name -> scene (`player@6`: its mover enters at 6 s),
        optionally `,delay=S` (first picture held S seconds) and `,loop=S` (last one held to an S-second loop).
        encoded: the scenes are encoded once here and the server only sends them (many 720p streams at the cost
        of none); seconds is then whole, and the first and last second of a scene should be still."""
        self.width, self.height, self.fps, self.encoded = width, height, fps, encoded
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.raw = self._render(workdir, scene, seconds)
        self.mounts = {path: ",".join([str(self._render(workdir, scene, seconds)), *opts])
                       for path, (scene, *opts) in ((p, spec.split(",")) for p, spec in (mounts or {}).items())}
        self.proc: subprocess.Popen[bytes] | None = None
        self.media: list[tuple[str, float]] = []  # (path, monotonic) each time a mount's stream started over

    def _render(self, workdir: Path, scene: str, seconds: float) -> Path:
        raw = workdir / f"{scene}-{self.width}x{self.height}-{self.fps}-{seconds:g}.{'h264' if self.encoded else 'raw'}"
        if not raw.exists():
            frames = render_scene(scene, self.width, self.height, self.fps, seconds)
            if self.encoded:
                encode_h264(frames, self.fps, raw)
            else:
                write_raw(frames, raw)
        return raw

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def mount_url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 15.0) -> RtspServer:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--raw", str(self.raw), "--width", str(self.width),
             "--height", str(self.height), "--fps", str(self.fps),
             *[a for path, raw in self.mounts.items() for a in ("--mount", f"{path}={raw}")],
             *(["--h264"] if self.encoded else [])],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if b"READY" not in line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"RTSP server did not start on port {self.port}")
        threading.Thread(target=self._read_media, args=(self.proc.stdout,), daemon=True).start()
        return self

    def _read_media(self, stream: IO[bytes]) -> None:
        for line in stream:
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"MEDIA":
                self.media.append((parts[1].decode(), float(parts[2])))

    def starts(self, path: str) -> list[float]:
        """When the mount's stream started from its first picture (monotonic), each time it did."""
        return [t for p, t in list(self.media) if p == path]

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
