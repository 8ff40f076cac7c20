"""The cameras driver: one worker process per camera, supervised; state, telemetry and commands here."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any, cast

from agent.driver import CommandError, Context, Event, Reading
from drivers.camera.api import STATE_FILE
from drivers.camera.camera import Camera
from drivers.camera.config import CamerasConfig
from drivers.camera.detector_supervisor import DetectorSupervisor
from drivers.camera.reads import CameraReads, LastEvents
from drivers.camera.storage import Storage

TICK_S = 0.5


class CameraDriver:
    """Runs every enabled camera; one camera failing never disturbs the others."""

    def __init__(self) -> None:
        self.cameras: dict[str, Camera] = {}
        self.storage: Storage | None = None
        self.service: DetectorSupervisor | None = None

    async def run(self, ctx: Context) -> None:
        cfg: CamerasConfig = ctx.config
        events = LastEvents(ctx)  # every camera's last event, for the `cameras` read command
        ctx = cast(Context, events)
        self.storage = Storage(ctx.data_dir, cfg.storage, ctx.log)
        self.service = self._service(ctx, cfg)
        self.cameras = {c.name: Camera(c, cfg, ctx, self.storage, self.service) for c in cfg.devices if c.enabled}
        ctx.on_command("snapshot", self.snapshot_command)
        ctx.on_command("clip", self.clip_command)
        ctx.on_command("cameras", CameraReads(self.cameras, events).handle)
        ctx.health("starting", "{n} camera(s)", n=len(self.cameras))
        ctx.log.info("cameras_starting", cameras=",".join(self.cameras) or "-")
        tasks = [asyncio.create_task(r.run(), name=f"camera-{n}") for n, r in self.cameras.items()]
        if self.service is not None:
            tasks.append(asyncio.create_task(self.service.run(), name="camera-detector"))
        tasks.append(asyncio.create_task(self._watch(ctx, cfg), name="camera-watch"))
        tasks.append(asyncio.create_task(self._clock_checks(cfg), name="camera-clock"))
        tasks.append(asyncio.create_task(self._keep_storage(ctx, cfg), name="camera-storage"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                if not t.done() and not t.cancelling():  # a second cancel would cut a worker's shutdown short
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _service(ctx: Context, cfg: CamerasConfig) -> DetectorSupervisor | None:
        """The shared detector when some camera runs the installed YOLO (its model is checked when it starts)."""
        users = [c for c in cfg.devices if c.enabled and c.detect.enabled and c.detect.detector == "yolo"]
        if not cfg.detector.shared or not users:
            return None
        return DetectorSupervisor(cfg.detector, users[0].detect.model_dir, ctx.log.child("detector"), ctx.count)

    async def _keep_storage(self, ctx: Context, cfg: CamerasConfig) -> None:
        """Budget, age and free-disk floor, continuously; pausing and resuming recording are events."""
        assert self.storage is not None
        while True:
            change = await asyncio.to_thread(self.storage.enforce)
            if change == "paused":
                await ctx.emit(Event("recording_paused", {"reason": self.storage.paused,
                                                          "free_bytes": self.storage.free_bytes(),
                                                          "min_free_bytes": cfg.storage.min_free_bytes},
                                     severity="warning"))
            elif change == "resumed":
                await ctx.emit(Event("recording_resumed", {"free_bytes": self.storage.free_bytes()}))
            await asyncio.sleep(cfg.storage.check_every_s)

    async def _watch(self, ctx: Context, cfg: CamerasConfig) -> None:
        """Online/offline decisions, health, periodic telemetry, deferred snapshots, the state file."""
        next_telemetry = time.monotonic() + min(cfg.health_interval_s, 5.0)
        was_metered = ctx.link.metered
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            events = [e for r in self.cameras.values() if (e := r.liveness.transition(now)) is not None]
            if events:
                await ctx.emit(*events)
            self._report_health(ctx)
            if now >= next_telemetry:
                next_telemetry = now + cfg.health_interval_s
                readings = [rd for r in self.cameras.values() for rd in r.readings()]
                if self.storage is not None:
                    readings.append(Reading("camera_storage_bytes", self.storage.total_bytes(), "B"))
                if self.service is not None:
                    readings += [Reading("detector_service_up", self.service.ready),
                                 Reading("detector_service_restarts", self.service.restarts)]
                if readings:
                    await ctx.emit(*readings)
                await self._write_state(ctx)
            counts = [rd for r in self.cameras.values() for rd in r.counts.readings(now)]
            if counts:
                await ctx.emit(*counts)
            metered = ctx.link.metered
            if not metered and (was_metered or any(r.commands.deferred_clips for r in self.cameras.values())):
                for r in self.cameras.values():
                    sent = await r.flush_pending()
                    if sent:
                        ctx.log.info("deferred_flushed", camera=r.cam.name, count=sent)
            was_metered = metered

    def _report_health(self, ctx: Context) -> None:
        offline = [n for n, r in self.cameras.items() if r.liveness.online is False]
        unknown = [n for n, r in self.cameras.items() if r.liveness.online is None]
        fallback = [n for n, r in self.cameras.items() if r.detector_warning]
        paused = self.storage.paused if self.storage is not None else None
        service = self.service
        lowered = [n for n, r in self.cameras.items() if r.liveness.heartbeat.get("analysis_lowered")]
        now = time.time()
        outage = service.recent_outage(now) if service is not None else None
        if offline:
            ctx.health("degraded", "offline: {cameras}", cameras=", ".join(offline))
        elif fallback:
            ctx.health("degraded", "{cameras}: {warning}", cameras=", ".join(fallback),
                       warning=self.cameras[fallback[0]].detector_warning)
        elif paused and self.storage is not None:
            ctx.health("degraded", "recording paused: free disk {free_kib} KiB under the floor of {floor_kib} KiB "
                       "(storage.min_free_bytes) on {root}", **self.storage.paused_params)
        elif service is not None and service.down_since is not None:
            ctx.health("degraded", "detector service down since {since}: cameras detect people with HOG",
                       since=self._clock(ctx, service.down_since))
        elif unknown:
            ctx.health("starting", "connecting: {cameras}", cameras=", ".join(unknown))
        elif lowered and outage is not None:  # the outage stays in sight while a busy box catches up
            ctx.health("degraded", "analysis lowered (the box cannot keep up): {cameras}; detector service was down "
                       "{since}-{until} ({down_s} s)", cameras=", ".join(lowered),
                       since=self._clock(ctx, outage["from"]), until=self._clock(ctx, outage["to"]), down_s=outage["s"])
        elif lowered:
            ctx.health("degraded", "analysis lowered (the box cannot keep up): {cameras}", cameras=", ".join(lowered))
        elif outage is not None:
            ctx.health("ok", "{n} camera(s) online; detector service was down {since}-{until} ({down_s} s)",
                       n=len(self.cameras), since=self._clock(ctx, outage["from"]),
                       until=self._clock(ctx, outage["to"]), down_s=outage["s"])
        else:
            ctx.health("ok", "{n} camera(s) online", n=len(self.cameras))

    @staticmethod
    def _clock(ctx: Context, wall: float) -> str:
        return dt.datetime.fromtimestamp(wall, ctx.timezone).strftime("%H:%M:%S")

    async def _write_state(self, ctx: Context) -> None:
        """Gathered on the loop, written (with its fsync) in a thread: a slow disk must not stall the heartbeats."""
        state: dict[str, Any] = {"ts": time.time(), "cameras": {n: r.state() for n, r in self.cameras.items()}}
        if self.storage is not None:
            state["storage"] = {"bytes": self.storage.total_bytes(), "budget_bytes": self.storage.cfg.budget_bytes,
                                "paused": self.storage.paused, "deleted": self.storage.deleted}
        if self.service is not None:
            state["detector_service"] = self.service.state()
        await ctx.write_state(STATE_FILE, state)

    async def _clock_checks(self, cfg: CamerasConfig) -> None:
        while True:
            await asyncio.sleep(cfg.clock_check_interval_s)
            for r in self.cameras.values():
                await r.source.check_clock()

    def _camera(self, command: str, args: dict[str, Any]) -> Camera:
        name = args.get("camera")
        if name is None and len(self.cameras) == 1:
            name = next(iter(self.cameras))
        if not isinstance(name, str):
            raise CommandError(f"{command} needs 'camera': one of " + ", ".join(self.cameras))
        camera = self.cameras.get(name)
        if camera is None:
            raise CommandError(f"unknown camera {name!r}; known: {', '.join(self.cameras) or 'none'}")
        return camera

    async def snapshot_command(self, args: dict[str, Any]) -> dict[str, Any]:
        """COC `snapshot` {camera}: a fresh picture on snapshot/{camera}/{event_id}."""
        return await self._camera("snapshot", args).commands.snapshot()

    async def clip_command(self, args: dict[str, Any]) -> dict[str, Any]:
        """COC `clip` {camera}: the clips kept; {camera, id, offset?}: upload one as clip_chunk events."""
        return await self._camera("clip", args).commands.clip(args)
