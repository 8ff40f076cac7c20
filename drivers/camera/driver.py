"""The cameras driver: one worker process per camera, supervised; state, telemetry and commands here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any, ClassVar

from agent.driver import CommandError, Event
from drivers.camera.config import CamerasConfig
from drivers.camera.runner import CameraRunner

STATE_FILE = "state.json"
TICK_S = 0.5


class CameraDriver:
    """Runs every enabled camera; one camera failing never disturbs the others."""

    section: ClassVar[str] = "cameras"
    Config: ClassVar[type[CamerasConfig]] = CamerasConfig

    def __init__(self) -> None:
        self.runners: dict[str, CameraRunner] = {}

    async def run(self, ctx: Any) -> None:
        cfg: CamerasConfig = ctx.config
        self.runners = {c.name: CameraRunner(c, cfg, ctx) for c in cfg.devices if c.enabled}
        ctx.on_command("snapshot", self.snapshot_command)
        ctx.health("starting", f"{len(self.runners)} camera(s)")
        ctx.log.info("cameras_starting", cameras=",".join(self.runners) or "-")
        tasks = [asyncio.create_task(r.run(), name=f"camera-{n}") for n, r in self.runners.items()]
        tasks.append(asyncio.create_task(self._watch(ctx, cfg), name="camera-watch"))
        tasks.append(asyncio.create_task(self._clock_checks(cfg), name="camera-clock"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                if not t.done() and not t.cancelling():  # a second cancel would cut a worker's shutdown short
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, ctx: Any, cfg: CamerasConfig) -> None:
        """Online/offline decisions, health, periodic telemetry, deferred snapshots, the state file."""
        next_telemetry = time.monotonic() + min(cfg.health_interval_s, 5.0)
        was_metered = ctx.link.metered
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            events = []
            for name, r in self.runners.items():
                change = r.decide_online(now)
                if change is True:
                    ctx.log.info("camera_online", camera=name)
                    if r.online_reported_offline:
                        events.append(Event("camera_online", {"camera": name}))
                    r.online_reported_offline = False
                elif change is False:
                    age = round(r.frame_age(now), 1)
                    ctx.log.warning("camera_offline", camera=name, frame_age_s=age, problem=r.problem or None)
                    r.online_reported_offline = True
                    events.append(Event("camera_offline", {"camera": name, "last_frame_age_s": age,
                                                           "problem": r.problem}, severity="warning"))
            if events:
                await ctx.emit(*events)
            self._report_health(ctx)
            if now >= next_telemetry:
                next_telemetry = now + cfg.health_interval_s
                readings = [rd for r in self.runners.values() for rd in r.readings()]
                if readings:
                    await ctx.emit(*readings)
                self._write_state(ctx)
            metered = ctx.link.metered
            if was_metered and not metered:
                for r in self.runners.values():
                    sent = await r.flush_pending()
                    if sent:
                        ctx.log.info("snapshots_flushed", camera=r.cam.name, count=sent)
            was_metered = metered

    def _report_health(self, ctx: Any) -> None:
        offline = [n for n, r in self.runners.items() if r.online is False]
        unknown = [n for n, r in self.runners.items() if r.online is None]
        if offline:
            ctx.health("degraded", "offline: " + ", ".join(offline))
        elif unknown:
            ctx.health("starting", "connecting: " + ", ".join(unknown))
        else:
            ctx.health("ok", f"{len(self.runners)} camera(s) online")

    def _write_state(self, ctx: Any) -> None:
        path = ctx.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        state = {"ts": time.time(), "cameras": {n: r.state() for n, r in self.runners.items()}}
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(state, indent=1))
            os.replace(tmp, path)

    async def _clock_checks(self, cfg: CamerasConfig) -> None:
        while True:
            await asyncio.sleep(cfg.clock_check_interval_s)
            for r in self.runners.values():
                await r.check_clock()

    async def snapshot_command(self, args: dict[str, Any]) -> dict[str, Any]:
        """COC `snapshot` {camera}: a fresh picture on snapshot/{camera}/{event_id}."""
        name = args.get("camera")
        if name is None and len(self.runners) == 1:
            name = next(iter(self.runners))
        if not isinstance(name, str):
            raise CommandError("snapshot needs 'camera': one of " + ", ".join(self.runners))
        runner = self.runners.get(name)
        if runner is None:
            raise CommandError(f"unknown camera {name!r}; known: {', '.join(self.runners) or 'none'}")
        return await runner.snapshot_now()
