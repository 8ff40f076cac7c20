"""A stop must stop: cancelling the scheduler in the same tick as a change used to be swallowed by
Python 3.11's asyncio.wait_for, leaving the loop running and the driver's shutdown hanging."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.broadcast.airing_audio import AiringAudio
from drivers.broadcast.scheduler import Scheduler
from drivers.broadcast.store import DB_FILE, Store
from tests.broadcast.harness import config
from tests.support.context import RecordingContext


def test_cancel_in_the_same_tick_as_a_change_ends_the_scheduler(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"loa": {"type": "rtp", "group": "239.255.0.9", "port": 5004, "ttl": 0,
                                     "interface": "127.0.0.1"}})  # no player: nothing is sent
    ctx = RecordingContext("broadcast", cfg, tmp_path / "data")
    store = Store(ctx.data_dir / DB_FILE)
    airing_audio = AiringAudio(cfg, ctx.data_dir / "tts-cache")
    sched = Scheduler(ctx, store, airing_audio, {})

    async def scenario() -> list[bool]:
        ended = []
        for _ in range(5):
            task = asyncio.create_task(sched.run())
            for _ in range(5):
                await asyncio.sleep(0)  # the loop is now waiting for a change
            sched.changed.set()
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=3)
            ended.append(bool(done))
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=3)
        return ended

    try:
        ended = asyncio.run(scenario())
    finally:
        airing_audio.close()
        store.close()
    assert all(ended), f"the scheduler kept running after {ended.count(False)} of 5 cancels"
