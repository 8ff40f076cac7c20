"""A driver for core tests: emits numbered readings and records each one whose emit returned."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from agent.config import load
from agent.driver import Context, Event, Reading
from agent.section import Section
from agent.supervisor import Supervisor
from drivers.registry import DriverSpec


class EmitterConfig(Section):
    rate_hz: float = 50.0
    count: int = 0  # 0 = forever
    acked_file: Path
    concurrency: int = 1
    crash_after: int = 0  # raise after this many emits (supervisor restart tests)


class EmitterDriver:
    section: ClassVar[str] = "emitter"
    Config: ClassVar[type[Section]] = EmitterConfig

    async def run(self, ctx: Context) -> None:
        cfg: EmitterConfig = ctx.config
        start = 0
        if cfg.acked_file.exists():
            lines = cfg.acked_file.read_text().split()
            start = max((int(x) for x in lines if x.isdigit()), default=-1) + 1
        out = open(cfg.acked_file, "a", buffering=1)
        ctx.health("ok")
        n = start
        emitted = 0
        try:
            while cfg.count == 0 or n < start + cfg.count:
                batch = list(range(n, n + cfg.concurrency))
                n += cfg.concurrency

                async def one(i: int) -> None:
                    await ctx.emit(Reading("counter", i, None, tags={"pid": str(os.getpid())}))
                    out.write(f"{i}\n")

                await asyncio.gather(*(one(i) for i in batch))
                emitted += len(batch)
                if cfg.crash_after and emitted >= cfg.crash_after:
                    await ctx.emit(Event("emitter_crashing", {"at": n}))
                    raise RuntimeError("deliberate crash")
                await asyncio.sleep(1.0 / cfg.rate_hz)
            ctx.health("ok", "done")
            await asyncio.Event().wait()
        finally:
            out.close()


def main(config_path: str, emitter: dict[str, Any]) -> int:
    from agent.logs import setup_logging

    loaded = load(config_path)
    setup_logging("INFO")
    spec = DriverSpec("emitter", "tests.core.emitter:EmitterConfig", "tests.core.emitter:EmitterDriver")
    sup = Supervisor(loaded, extra={"emitter": (spec, EmitterConfig(**emitter))})
    return asyncio.run(sup.run())


if __name__ == "__main__":
    import json

    sys.exit(main(sys.argv[1], json.loads(sys.argv[2])))
