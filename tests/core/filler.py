"""A driver for spool-full tests: fills the spool with events, then emits numbered readings and writes each
number to `acked_file` or `dropped_file` by what emit answered."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from agent.config import load
from agent.driver import Context, Event, Reading
from agent.section import Section
from agent.supervisor import Supervisor, run_supervisor
from drivers.registry import DriverSpec


class FillerConfig(Section):
    events: int = 0
    event_bytes: int = 2000
    readings: int = 100
    reading_bytes: int = 0  # padding in a tag: readings bigger than the events
    rate_hz: float = 100.0
    acked_file: Path
    dropped_file: Path


class FillerDriver:
    section: ClassVar[str] = "filler"
    Config: ClassVar[type[Section]] = FillerConfig

    async def run(self, ctx: Context) -> None:
        cfg: FillerConfig = ctx.config
        ctx.health("ok")
        for i in range(cfg.events):
            await ctx.emit(Event("filler", {"i": i, "pad": "x" * cfg.event_bytes}))
        with open(cfg.acked_file, "a", buffering=1) as acked, open(cfg.dropped_file, "a", buffering=1) as dropped:
            for n in range(cfg.readings):
                stored = await ctx.emit(Reading("counter", n, tags={"pad": "x" * cfg.reading_bytes}))
                (acked if stored else dropped).write(f"{n}\n")
                await asyncio.sleep(1.0 / cfg.rate_hz)
        ctx.health("ok", "done")
        await asyncio.Event().wait()


def main(config_path: str, settings: str) -> int:
    from agent.logs import setup_logging

    loaded = load(config_path)
    setup_logging("INFO")
    spec = DriverSpec("filler", "tests.core.filler:FillerConfig", "tests.core.filler:FillerDriver")

    def extra() -> dict[str, tuple[DriverSpec, Any]]:
        return {"filler": (spec, FillerConfig(**json.loads(settings)))}

    return run_supervisor(Supervisor(loaded, extra=extra))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
