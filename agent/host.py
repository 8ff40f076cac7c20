"""The host-metrics driver: the box (psutil) and the agent's own counters, with threshold alarms that do not flap."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Callable

import psutil
from pydantic import Field, model_validator

from agent.driver import Context, Event, Priority, Reading
from agent.section import Section


class Threshold(Section):
    """Raise at `high`, clear only below `clear`: the gap is the hysteresis."""

    high: float = Field(description="raised when the value reaches this")
    clear: float = Field(description="cleared only when the value falls below this (below high)")

    @model_validator(mode="after")
    def _order(self) -> Threshold:
        if self.clear >= self.high:
            raise ValueError("clear must be below high")
        return self


class HostConfig(Section):
    """Host metrics (CPU, memory, disk, temperatures, NICs) and their threshold alarms."""

    interval_s: float = Field(60.0, ge=1.0, le=3600.0, description="host telemetry period")
    metered_interval_s: float = Field(300.0, ge=1.0, le=3600.0,
                                      description="host telemetry period while a metered (4G) link is in use")
    disk_pct: Threshold = Field(Threshold(high=90, clear=85), description="disk_high alarm on disk used %")
    memory_pct: Threshold = Field(Threshold(high=90, clear=80), description="memory_high alarm on memory used %")
    temperature_c: Threshold = Field(Threshold(high=80, clear=70),
                                    description="temperature_high alarm on any temperature sensor, in °C")
    interfaces: list[str] | None = Field(None,
                                        description="network interfaces to report counters for; absent = all but lo")


class ThresholdTracker:
    """Turns a stream of values into raised/cleared transitions with hysteresis."""

    def __init__(self, kind: str, threshold: Threshold) -> None:
        self.kind = kind
        self.threshold = threshold
        self._active: dict[str, bool] = {}

    def revert(self, key: str) -> None:
        """The last transition's event was not stored (spool refusing or full): undo it, so the next value
        that still calls for it makes the event again."""
        self._active[key] = not self._active.get(key, False)

    def update(self, key: str, value: float) -> Event | None:
        active = self._active.get(key, False)
        if not active and value >= self.threshold.high:
            self._active[key] = True
            return Event(self.kind, {"state": "raised", "key": key, "value": round(value, 2),
                                     "high": self.threshold.high}, severity="warning", priority=Priority.ALARM)
        if active and value < self.threshold.clear:
            self._active[key] = False
            return Event(self.kind, {"state": "cleared", "key": key, "value": round(value, 2),
                                     "clear": self.threshold.clear}, severity="info", priority=Priority.ALARM)
        return None


def host_readings(cfg: HostConfig, data_dir: Path, proc: psutil.Process) -> list[Reading]:
    """One sample of the host and of this process."""
    now = time.time()
    out: list[Reading] = []

    def add(name: str, value: Any, unit: str | None = None, **tags: str) -> None:
        out.append(Reading(name, value, unit, now, tags))

    add("cpu_pct", psutil.cpu_percent(interval=None), "%")
    for label, v in zip(("load1", "load5", "load15"), os.getloadavg()):
        add(label, round(v, 2))
    vm = psutil.virtual_memory()
    add("mem_used_pct", vm.percent, "%")
    add("mem_available", vm.available, "B")
    sw = psutil.swap_memory()
    add("swap_used_pct", sw.percent, "%")
    mounts = {"/": Path("/")}
    mounts["data"] = data_dir if data_dir.exists() else Path("/")
    for label, path in mounts.items():
        du = psutil.disk_usage(str(path))
        add("disk_used_pct", du.percent, "%", mount=label)
        add("disk_free", du.free, "B", mount=label)
    temps = getattr(psutil, "sensors_temperatures", lambda: {})()
    for chip, entries in (temps or {}).items():
        for i, t in enumerate(entries):
            add("temperature", t.current, "°C", sensor=f"{chip}/{t.label or i}")
    add("uptime", round(now - psutil.boot_time()), "s")
    counters = psutil.net_io_counters(pernic=True)
    for nic, c in counters.items():
        if nic == "lo" or (cfg.interfaces is not None and nic not in cfg.interfaces):
            continue
        for field in ("bytes_sent", "bytes_recv", "errin", "errout", "dropin", "dropout"):
            add(f"net_{field}", getattr(c, field), "B" if field.startswith("bytes") else None, interface=nic)
    with proc.oneshot():
        add("agent_rss", proc.memory_info().rss, "B")
        add("agent_cpu_pct", round(proc.cpu_percent(interval=None), 2), "%")
        add("agent_threads", proc.num_threads())
        add("agent_fds", proc.num_fds())
    return out


class HostDriver:
    """Reports the box itself; the supervisor gives it the core's own stats."""

    async def run(self, ctx: Context) -> None:
        cfg: HostConfig = ctx.config
        core_stats: Callable[[], dict[str, Any]] = getattr(ctx, "core_stats", lambda: {})
        proc = psutil.Process()
        proc.cpu_percent(interval=None)
        psutil.cpu_percent(interval=None)
        disk = ThresholdTracker("disk_high", cfg.disk_pct)
        mem = ThresholdTracker("memory_high", cfg.memory_pct)
        temp = ThresholdTracker("temperature_high", cfg.temperature_c)
        ctx.health("ok")
        while True:
            readings = await asyncio.to_thread(host_readings, cfg, ctx.data_dir, proc)
            stats = core_stats()
            now = time.time()
            for key in ("spool_depth", "spool_bytes", "spool_dropped"):
                if key in stats:
                    readings.append(Reading(key, stats[key], "B" if key == "spool_bytes" else None, now))
            if "uplink_connected" in stats:
                readings.append(Reading("uplink_connected", stats["uplink_connected"], None, now))
            transitions: list[tuple[ThresholdTracker, str, Event]] = []
            for r in readings:
                tracker = {"disk_used_pct": disk, "mem_used_pct": mem, "temperature": temp}.get(r.name)
                if tracker is not None and isinstance(r.value, (int, float)):
                    key = r.tags.get("mount") or r.tags.get("sensor") or "host"
                    ev = tracker.update(key, float(r.value))
                    if ev is not None:
                        transitions.append((tracker, key, ev))
            await ctx.emit(*readings)
            for tracker, key, ev in transitions:  # each alone: only its own storing decides its state
                stored = await ctx.emit(ev)
                ctx.log.warning("threshold", kind=ev.kind, stored=stored is not False,
                                **{k: v for k, v in ev.data.items()})
                if stored is False:
                    tracker.revert(key)
            # on a metered backup link (4G) host telemetry goes frugal; alarms still fire on the next sample
            await asyncio.sleep(cfg.metered_interval_s if ctx.link.metered or ctx.link.slow_telemetry
                                else cfg.interval_s)
