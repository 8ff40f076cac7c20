"""The clip cutter's one-shot ffmpeg and ffprobe children end: a remux or probe that hangs is killed after its
timeout (the clip is counted as failed, its room given back), and one under way when the camera stops is killed."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from agent.logs import KvLogger
from drivers.camera import clips
from drivers.camera.clips import ClipRecorder, OpenClip, Segment, media_duration
from drivers.camera.config import ClipConfig, StorageConfig
from drivers.camera.storage import Storage
from tests.support.pids import cancel_once_started, pid_in, pid_running
from tests.support.wait import wait_until

LOG = KvLogger("test.clips")


@pytest.fixture
def hanging_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`ffmpeg` and `ffprobe` first on PATH that write their pid and hang, as on a wedged disk or a bad file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pidfile = tmp_path / "pid"
    for name in ("ffmpeg", "ffprobe"):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\necho $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}\nexec sleep 60\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return pidfile


def _recorder(tmp_path: Path) -> tuple[ClipRecorder, OpenClip, list[Segment]]:
    storage = Storage(tmp_path / "cameras", StorageConfig(min_free_bytes=0), LOG)
    ring = tmp_path / "cameras" / "ring" / "gate"
    ring.mkdir(parents=True)
    seg = ring / "seg00000000.ts"
    seg.write_bytes(b"\0" * 1880)
    now = time.time()
    rec = ClipRecorder("gate", ClipConfig(), ring, tmp_path / "cameras" / "clips" / "gate", storage, LOG)
    return rec, OpenClip("0123456789abcdef", now - 2), [Segment(seg, now - 2, now - 1, 1880)]


def test_a_remux_that_hangs_is_killed_after_its_timeout(tmp_path: Path, hanging_tools: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clips, "REMUX_BASE_S", 1.0)
    rec, clip, segs = _recorder(tmp_path)
    t0 = time.monotonic()
    assert asyncio.run(rec._remux(clip, segs)) is None
    assert time.monotonic() - t0 < 10
    assert rec.failures == 1 and rec.storage.reserved == 0
    assert not list(rec.clips_dir.glob("*.mp4")) and not list(rec.clips_dir.glob(".*"))
    pid = pid_in(hanging_tools)
    assert pid is not None
    wait_until(lambda: not pid_running(pid), 5, what=f"ffmpeg {pid} killed")


def test_a_remux_under_way_when_the_camera_stops_is_killed(tmp_path: Path, hanging_tools: Path) -> None:
    rec, clip, segs = _recorder(tmp_path)

    pid = cancel_once_started(rec._remux(clip, segs), hanging_tools, "ffmpeg")
    assert rec.storage.reserved == 0
    wait_until(lambda: not pid_running(pid), 5, what=f"ffmpeg {pid} killed")


def test_a_probe_that_hangs_gives_no_duration_after_its_timeout(tmp_path: Path, hanging_tools: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clips, "PROBE_TIMEOUT_S", 1.0)
    assert asyncio.run(media_duration(tmp_path / "any.mp4")) is None
    pid = pid_in(hanging_tools)
    assert pid is not None
    wait_until(lambda: not pid_running(pid), 5, what=f"ffprobe {pid} killed")
