"""The sensors driver: starts every source, then batches their readings, alarms and staleness into emits."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from agent.driver import Context, Emittable, Event, Reading
from drivers.sensors.alarms import AlarmEngine, Staleness
from drivers.sensors.config import SensorsConfig
from drivers.sensors.ingest import Ingest
from drivers.sensors.reads import SensorReads
from drivers.sensors.sources.modbus import ModbusBusPoller
from drivers.sensors.sources.mqtt import MqttSubscriber
from drivers.sensors.sources.serial import SerialLineSource

FINAL_FLUSH_TIMEOUT_S = 3.0


class _Source(Protocol):
    failure: Exception | None

    def start(self) -> None: ...
    def stop(self) -> None: ...


class SensorsDriver:
    """Sources run in their own threads and hand batches over; this loop is the only one that emits."""

    def __init__(self) -> None:
        self._health: tuple[str, str] | None = None
        self.reads = SensorReads()

    async def run(self, ctx: Context) -> None:
        cfg: SensorsConfig = ctx.config
        ingest = Ingest(cfg.max_buffered)
        alarms = AlarmEngine(list(cfg.alarms))
        staleness = Staleness()
        sources = self._build(ctx, cfg, ingest, staleness)
        ctx.health("starting", "{n} sources", n=len(sources))
        ctx.on_command("sensors", lambda args: self._sensors_command(ctx, args))
        started: list[_Source] = []
        try:
            for src in sources:
                src.start()
                started.append(src)
            ctx.log.info("sensors_started", mqtt=len(cfg.mqtt), serial=len(cfg.serial), modbus=len(cfg.modbus),
                         alarms=len(cfg.alarms))
            while True:
                await asyncio.sleep(cfg.flush_interval_s)
                await self._flush(ctx, cfg, ingest, alarms, staleness)
                for src in started:
                    if src.failure is not None:
                        raise RuntimeError(f"a sensor source thread failed: {src.failure!r}") from src.failure
        finally:
            await asyncio.shield(asyncio.to_thread(_stop_all, started))
            try:  # what the sources already accepted goes to the spool before we leave
                async with asyncio.timeout(FINAL_FLUSH_TIMEOUT_S):
                    await self._flush(ctx, cfg, ingest, alarms, staleness)
            except (TimeoutError, asyncio.CancelledError):
                ctx.log.warning("sensors_final_flush_incomplete")

    async def _sensors_command(self, ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        return self.reads.handle_with(ctx.max_message_bytes, args)

    @staticmethod
    def _build(ctx: Context, cfg: SensorsConfig, ingest: Ingest, staleness: Staleness) -> list[_Source]:
        now = time.monotonic()
        sources: list[_Source] = []
        for m in cfg.mqtt:
            sources.append(MqttSubscriber(m, ingest, ctx.log, f"commune-agent-{ctx.site_id}-sensors-{m.name}",
                                            cfg.stale_after_s))
        for s in cfg.serial:
            src = SerialLineSource(s, ingest, ctx.log, cfg.stale_after_s)
            staleness.expect(s.name, src.device, src.stale_s, now)
            sources.append(src)
        for b in cfg.modbus:
            bus = ModbusBusPoller(b, ingest, ctx.log, cfg.stale_after_s)
            for unit in bus.units:
                staleness.expect(b.name, unit.cfg.name, unit.stale_s, now)
            ctx.log.info("modbus_bus", bus=b.name, port=b.port, baud=b.baud, devices=len(b.devices),
                         cycle_wire_ms=round(bus.cycle_wire_s() * 1000, 1))
            sources.append(bus)
        return sources

    async def _flush(self, ctx: Context, cfg: SensorsConfig, ingest: Ingest, alarms: AlarmEngine,
                     staleness: Staleness) -> None:
        batches, events, counts = ingest.drain()
        now = time.monotonic()
        readings: list[Reading] = []
        for b in batches:
            readings.extend(b.readings)
            ev = staleness.seen(b.source, b.device, b.stale_after_s, now)
            if ev is not None:
                events.append(ev)
        events.extend(alarms.feed(readings, now))
        events.extend(alarms.tick(now))
        events.extend(staleness.check(now))
        for name, n in counts.items():
            ctx.count(name, n)
        if readings:
            ctx.count("readings", len(readings))
        self._report_health(ctx, ingest, staleness)
        self.reads.feed(readings, events)
        await _emit_batched(ctx, events, readings, cfg.max_batch)

    def _report_health(self, ctx: Context, ingest: Ingest, staleness: Staleness) -> None:
        down = []
        for name, st in sorted(ingest.statuses().items()):
            if not st.up:
                down.append(f"{name}: {st.detail}" if st.detail else name)
            down.extend(f"{name}/{dev}: {why}" for dev, why in sorted(st.devices_down.items()))
        stale = ", ".join(staleness.stale_devices()[:10])
        lost = "; ".join(down)[:400]
        if (lost, stale) == self._health:
            return
        self._health = (lost, stale)
        if lost and stale:
            ctx.health("degraded", "down: {down}; stale: {stale}", down=lost, stale=stale)
        elif lost:
            ctx.health("degraded", "down: {down}", down=lost)
        elif stale:
            ctx.health("degraded", "stale: {stale}", stale=stale)
        else:
            ctx.health("ok")


async def _emit_batched(ctx: Context, events: list[Event], readings: list[Reading], max_batch: int) -> None:
    """Events ride with the first chunk; each chunk is one telemetry message of at most max_batch readings."""
    first: list[Emittable] = list(events)
    if not readings:
        if first:
            await ctx.emit(*first)
        return
    for i in range(0, len(readings), max_batch):
        chunk: list[Emittable] = list(readings[i:i + max_batch])
        await ctx.emit(*(first + chunk if i == 0 else chunk))


def _stop_all(sources: list[_Source]) -> None:
    for src in reversed(sources):
        src.stop()
