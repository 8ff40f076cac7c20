"""A driver for core tests: emits numbered readings and records each one whose emit returned."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

from agent.config import load
from agent.driver import Context, Event, Reading
from agent.section import Section
from agent.supervisor import Supervisor, run_supervisor
from drivers.registry import DriverSpec


class EmitterConfig(Section):
    rate_hz: float = 50.0
    count: int = 0  # 0 = forever
    acked_file: Path
    concurrency: int = 1
    crash_after: int = 0  # raise after this many emits (supervisor restart tests)
    instances_file: Path | None = None  # "start ID" / "stop ID" lines: how many instances run at once
    ignore_cancel_s: float = 0.0  # a driver that keeps running this long after being cancelled
    stop_delay_s: float = 0.0  # a driver that takes this long to close its hardware when stopped


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
        me = uuid.uuid4().hex[:8]
        if cfg.instances_file is not None:
            with open(cfg.instances_file, "a") as f:
                f.write(f"start {me}\n")
        ctx.health("ok")
        n = start
        emitted = 0
        try:
            while cfg.count == 0 or n < start + cfg.count:
                batch = list(range(n, n + cfg.concurrency))
                n += cfg.concurrency

                async def one(i: int) -> None:
                    if await ctx.emit(Reading("counter", i, None, tags={"pid": str(os.getpid())})) is not False:
                        out.write(f"{i}\n")

                await asyncio.gather(*(one(i) for i in batch))
                emitted += len(batch)
                if cfg.crash_after and emitted >= cfg.crash_after:
                    await ctx.emit(Event("emitter_crashing", {"at": n}))
                    raise RuntimeError("deliberate crash")
                await asyncio.sleep(1.0 / cfg.rate_hz)
            ctx.health("ok", "done")
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if cfg.stop_delay_s:
                await asyncio.shield(asyncio.sleep(cfg.stop_delay_s))
            if cfg.ignore_cancel_s:  # a driver that will not stop: it ignores cancels, and leaves a thread behind
                threading.Thread(target=time.sleep, args=(cfg.ignore_cancel_s,), name="stuck-call").start()
                end = time.monotonic() + cfg.ignore_cancel_s
                while time.monotonic() < end:
                    try:
                        await asyncio.sleep(end - time.monotonic())
                    except asyncio.CancelledError:
                        pass
            raise
        finally:
            out.close()
            if cfg.instances_file is not None:
                with open(cfg.instances_file, "a") as f:
                    f.write(f"stop {me}\n")


def main(config_path: str, emitter: str) -> int:
    """emitter: the settings as JSON, or @FILE to re-read them from FILE at every reload."""
    from agent.logs import setup_logging

    loaded = load(config_path)
    setup_logging("INFO")
    spec = DriverSpec("emitter", "tests.support.emitter:EmitterConfig", "tests.support.emitter:EmitterDriver")

    def settings() -> dict[str, tuple[DriverSpec, Any]]:
        text = Path(emitter[1:]).read_text() if emitter.startswith("@") else emitter
        return {"emitter": (spec, EmitterConfig(**json.loads(text)))}

    return run_supervisor(Supervisor(loaded, extra=settings))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
