"""One storage budget for clips and snapshots: oldest first, max age, and a free-disk floor that pauses
recording — on a real, small tmpfs with three cameras recording at once."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.logs import KvLogger
from drivers.camera.config import CamerasConfig, StorageConfig
from drivers.camera.storage import Storage
from tests.camera.servers import RtspServer
from tests.camera.test_driver_rtsp import Running, camera
from tests.support.context import RecordingContext
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wait import async_wait_until

MiB = 1024 * 1024


def put(path: Path, size: int, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))
    return path


def test_oldest_go_first_and_max_age(tmp_path: Path) -> None:
    s = Storage(tmp_path, StorageConfig(budget_bytes=MiB, max_age_days=1, min_free_bytes=0), KvLogger("t"))
    old = put(tmp_path / "snapshots/a/00000000000000000001_e1.jpg", 300_000)
    clip = put(tmp_path / "clips/a/00000000000000000002_c1.mp4", 300_000)
    meta = put(tmp_path / "clips/a/00000000000000000002_c1.json", 100)
    new = put(tmp_path / "snapshots/b/00000000000000000003_e2.jpg", 300_000)
    assert s.make_room(300_000)
    assert not old.exists() and clip.exists() and new.exists()  # the oldest, whatever camera or kind
    assert s.make_room(500_000) and not clip.exists() and not meta.exists() and new.exists()
    assert not s.make_room(2 * MiB)  # can never fit: refused
    stale = put(tmp_path / "clips/b/00000000000000000009_c2.mp4", 1000, age_s=2 * 86400)
    s.enforce()
    assert not stale.exists()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "24m") as mnt:
        yield mnt


@pytest.mark.slow
def test_three_cameras_never_exceed_the_budget_and_pause_on_a_full_disk(tmp_path: Path, tmpfs: Path) -> None:
    asyncio.run(_three_cameras(tmp_path, tmpfs))


def usage(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


async def _three_cameras(tmp_path: Path, disk: Path) -> None:
    budget = 6 * MiB
    servers = [RtspServer(tmp_path / "scenes", "mover", 320, 180, seconds=4).start() for _ in range(3)]
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], usage(disk / "data"))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        cfg = CamerasConfig.model_validate({
            "devices": [camera(f"cam{i}", s.url, motion={"end_after_s": 0.5},
                               clip={"pre_roll_s": 1, "post_roll_s": 1, "max_clip_s": 8})
                        for i, s in enumerate(servers)],
            "open_timeout_s": 2, "read_timeout_s": 2, "health_interval_s": 60,
            "storage": {"budget_bytes": budget, "min_free_bytes": 4 * MiB, "check_every_s": 0.5}})
        ctx = RecordingContext("cameras", cfg, disk / "data")
        sampler.start()
        async with Running(ctx) as run:
            storage = run.driver.storage
            assert storage is not None
            await async_wait_until(lambda: storage.deleted >= 3, timeout=90, what="retention deleting old clips")
            clips = [e for e in ctx.events if e.data.get("phase") == "end" and (e.data.get("clip") or {}).get("bytes")]
            assert {e.data["camera"] for e in clips} == {"cam0", "cam1", "cam2"}

            # the disk fills up (something else writes): recording pauses and says why
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            filler = disk / "filler"
            filler.write_bytes(b"\0" * max(0, free - 2 * MiB))
            paused = await async_wait_until(lambda: ctx.events_of("recording_paused"), timeout=10,
                                            what="recording_paused")
            assert "free disk" in paused[0].data["reason"] and paused[0].severity == "warning"
            await async_wait_until(lambda: not any(r.clips.recording for r in run.driver.cameras.values()),
                                   timeout=10, what="every ring recorder stopped")
            filler.unlink()
            await async_wait_until(lambda: ctx.events_of("recording_resumed"), timeout=10, what="recording_resumed")
            await async_wait_until(lambda: all(r.clips.recording for r in run.driver.cameras.values()),
                                   timeout=20, what="recording again")
        stop.set()
        sampler.join()
        print(f"peak {peak[0]} of {budget}")
        assert budget // 3 < peak[0] <= budget, f"peak {peak[0]} bytes against a budget of {budget}"
    finally:
        stop.set()
        for s in servers:
            s.stop()
