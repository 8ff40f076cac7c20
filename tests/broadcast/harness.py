"""Run the real broadcast driver inside a test, with a RecordingContext standing in for the core."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import yaml

from drivers.broadcast.config import BroadcastConfig
from drivers.broadcast.driver import BroadcastDriver
from tests.support.context import RecordingContext
from tests.support.tasks import cancel_and_wait
from tests.support.wait import async_wait_until

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SHORT_VI = "Xin chào bà con. Thông báo họp lúc 7h30 ngày 25/11/2026."


def local_at(seconds_from_now: float) -> str:
    """A naive local ISO time, the way an operator writes it in a bulletin file."""
    return datetime.fromtimestamp(time.time() + seconds_from_now, TZ).replace(tzinfo=None).isoformat(
        timespec="milliseconds")


def config(tmp: Path, zones: dict[str, Any], **extra: Any) -> BroadcastConfig:
    base: dict[str, Any] = {"zones": zones, "bulletin_dir": str(tmp / "bulletins"), "quiet_hours": None,
                            "wake_ahead_s": 1.0, "tts": {"engines": ["gtts", "espeak"], "gtts_timeout_s": 2}}
    base.update(extra)
    return BroadcastConfig.model_validate(base)


def write_bulletin(directory: Path, name: str, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    tmp = directory / f".{name}.tmp"
    tmp.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)
    return path


def asruns(ctx: RecordingContext, outcome: str | None = None, bulletin: str | None = None) -> list[dict[str, Any]]:
    out = [e.data for e in ctx.events_of("asrun")]
    return [d for d in out if (outcome is None or d["outcome"] == outcome)
            and (bulletin is None or d["bulletin_id"] == bulletin)]


@asynccontextmanager
async def running(cfg: BroadcastConfig, data_dir: Path) -> AsyncIterator[RecordingContext]:
    ctx = RecordingContext("broadcast", cfg, data_dir)
    task = asyncio.create_task(BroadcastDriver().run(ctx))
    try:
        await async_wait_until(lambda: "broadcast" in ctx.commands or task.done(), timeout=10, what="driver start")
        if task.done():
            task.result()
        yield ctx
    finally:
        await cancel_and_wait(task)
