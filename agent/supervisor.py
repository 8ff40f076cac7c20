"""Starts drivers, restarts a crashed one with capped backoff, publishes health, handles signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from agent import __version__
from agent.commands import CommandRouter
from agent.config import ConfigError, LoadedConfig, load, spool_path
from agent.driver import CommandError, CommandHandler, Emittable, Event, HealthState, LinkState
from agent.logs import KvLogger, setup_logging
from agent.notify import Notifier
from agent.payloads import to_records
from agent.section import read_secret
from agent.spool import Spool
from agent.uplink import Uplink
from drivers.registry import SPECS, DriverSpec, load_object

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
HEALTHY_RUN_S = 60.0  # a driver that ran this long before crashing starts again from the minimum backoff
STOP_TIMEOUT_S = 5.0


class DriverContext:
    """The Context a driver sees; everything goes through its supervisor."""

    def __init__(self, sup: Supervisor, runner: DriverRunner, data_dir: Path) -> None:
        self._sup = sup
        self._runner = runner
        self.name = runner.spec.section
        self.config = runner.config
        self.log = KvLogger(f"driver.{self.name}")
        self.data_dir = data_dir
        self.site_id = sup.config.site.site_id
        self.timezone = ZoneInfo(sup.config.site.timezone)

    async def emit(self, *items: Emittable) -> None:
        await self._sup.emit(self.name, items)

    def health(self, state: HealthState, detail: str = "") -> None:
        self._runner.set_state(state, detail)

    def count(self, name: str, n: int = 1) -> None:
        self._runner.counters[name] += n

    @property
    def link(self) -> LinkState:
        return self._sup.link

    def set_link(self, link: LinkState) -> None:
        self._sup.set_link(link)

    @property
    def uplink_connected(self) -> bool:
        return self._sup.uplink is not None and self._sup.uplink.connected

    def on_command(self, name: str, handler: CommandHandler) -> None:
        self._sup.router.register(name, handler)

    def core_stats(self) -> dict[str, Any]:
        return self._sup.core_stats()

    async def call_command(self, name: str, args: dict[str, Any], source: str) -> dict[str, Any]:
        """Run a command handler as an in-process client (the console); the result dict as the COC gets it."""
        return await self._sup.router.call_local(name, args, source)

    @property
    def agent_config(self) -> Any:
        """The whole running config (the console shows it masked and reads other sections' paths)."""
        return self._sup.config

    def tap(self, listener: Callable[[str, tuple[Emittable, ...]], None]) -> Callable[[], None]:
        """See everything drivers emit, as it is emitted; returns the function that stops it."""
        self._sup.taps.append(listener)
        return lambda: self._sup.taps.remove(listener) if listener in self._sup.taps else None


class DriverRunner:
    """Keeps one driver running: restarts it after a crash with capped exponential backoff."""

    def __init__(self, sup: Supervisor, spec: DriverSpec, config: Any) -> None:
        self.sup = sup
        self.spec = spec
        self.config = config
        self.state: HealthState = "starting"
        self.detail = ""
        self.since = time.time()
        self.restarts = 0
        self.last_error = ""
        self.counters: Counter[str] = Counter()
        self.task: asyncio.Task[None] | None = None
        self.log = KvLogger("supervisor")

    def set_state(self, state: HealthState, detail: str = "") -> None:
        if (state, detail) == (self.state, self.detail):
            return
        self.log.info("driver_state", driver=self.spec.section, state=state, detail=detail or None)
        self.state, self.detail, self.since = state, detail, time.time()
        self.sup.health_changed()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run_forever(), name=f"driver-{self.spec.section}")

    async def stop(self) -> None:
        if self.task is None:
            return
        self.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), STOP_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception as exc:
            self.log.warning("driver_stop_error", driver=self.spec.section, error=str(exc))
        self.task = None

    async def _run_forever(self) -> None:
        backoff = BACKOFF_MIN_S
        name = self.spec.section
        data_dir = self.sup.config.data_dir / name
        while True:
            started = time.monotonic()
            self.set_state("starting")
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
                driver = load_object(self.spec.driver)()
                await driver.run(DriverContext(self.sup, self, data_dir))
                raise RuntimeError("driver returned; drivers must run until cancelled")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if time.monotonic() - started > HEALTHY_RUN_S:
                    backoff = BACKOFF_MIN_S
                self.log.exception("driver_crashed", exc, driver=name, restarts=self.restarts,
                                   restart_in_s=backoff)
                self.set_state("failed", self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "since": round(self.since, 3), "restarts": self.restarts,
                "last_error": self.last_error or None, "counters": dict(self.counters)}


class Supervisor:
    """The agent process: the only global state lives here."""

    def __init__(self, loaded: LoadedConfig, extra: dict[str, tuple[DriverSpec, Any]] | None = None) -> None:
        self.loaded = loaded
        self._extra = extra or {}
        self.config = loaded.config
        self.boot_id = uuid.uuid4().hex
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.log = KvLogger("supervisor")
        self.link = LinkState()
        self.runners: dict[str, DriverRunner] = {}
        self.taps: list[Callable[[str, tuple[Emittable, ...]], None]] = []
        self.spool: Spool | None = None
        self.uplink: Uplink | None = None
        self.router = self._make_router()
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._health_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._uplink_task: asyncio.Task[None] | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_wanted = False

    # -- wiring --------------------------------------------------------------------------
    def _make_router(self) -> CommandRouter:
        coc = self.config.coc
        key = read_secret(coc.command_key_file)
        router = CommandRouter(KvLogger("commands"), coc.max_command_bytes, key.encode() if key else None,
                               coc.command_window_s)
        router.register("ping", self._cmd_ping)
        router.register("rebirth", self._cmd_rebirth)
        router.register("reload", self._cmd_reload)
        return router

    def _make_uplink(self) -> Uplink:
        assert self.spool is not None
        return Uplink(self.config.coc, self.config.site.site_id, self.spool, self.boot_id, self.router,
                      self.birth, self.health_payload, KvLogger("uplink"), self.health_changed)

    def _enabled(self) -> dict[str, tuple[DriverSpec, Any]]:
        out = {}
        for spec in SPECS:
            section = getattr(self.config, spec.section, None)
            if section is not None and getattr(section, "enabled", True):
                out[spec.section] = (spec, section)
        out.update(self._extra)
        return out

    # -- what drivers call ---------------------------------------------------------------
    async def emit(self, source: str, items: tuple[Emittable, ...]) -> None:
        assert self.spool is not None
        records = to_records(source, items, historical=not (self.uplink and self.uplink.connected))
        for listener in list(self.taps):
            try:
                listener(source, items)
            except Exception as exc:  # a watcher's bug must not lose a reading
                self.log.exception("tap_failed", exc, source=source)
        if records:
            await self.spool.put(records)
            if self.uplink is not None:
                self.uplink.wakeup.set()

    def set_link(self, link: LinkState) -> None:
        if link.name != self.link.name or link.metered != self.link.metered:
            self.log.info("link_in_use", link=link.name, metered=link.metered)
            self.link = link
            self.health_changed()

    def health_changed(self) -> None:
        self._health_dirty.set()

    # -- payloads ------------------------------------------------------------------------
    def birth(self) -> dict[str, Any]:
        return {"online": True, "boot_id": self.boot_id, "version": __version__, "config_sha": self.loaded.sha,
                "started_at": self.started_at, "hostname": socket.gethostname(),
                "site": {"site_id": self.config.site.site_id, "name": self.config.site.name},
                "drivers": sorted(self.runners)}

    def core_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.spool.stats() if self.spool else {}
        stats["uplink_connected"] = bool(self.uplink and self.uplink.connected)
        return stats

    def health_payload(self) -> dict[str, Any]:
        return {"ts": round(time.time(), 3), "boot_id": self.boot_id, "pid": os.getpid(),
                "drivers": {n: r.snapshot() for n, r in sorted(self.runners.items())},
                "spool": self.spool.stats() if self.spool else {},
                "uplink": self.uplink.stats() if self.uplink else {},
                "link": {"name": self.link.name, "metered": self.link.metered, "since": self.link.since or None},
                "commands": dict(self.router.counters)}

    def status_line(self) -> str:
        ok = sum(1 for r in self.runners.values() if r.state == "ok")
        depth = self.spool.depth if self.spool else 0
        up = self.uplink.state if self.uplink else "none"
        return f"uplink={up} spool={depth} drivers_ok={ok}/{len(self.runners)} link={self.link.name or '-'}"

    # -- commands ------------------------------------------------------------------------
    async def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "boot_id": self.boot_id, "ts": round(time.time(), 3)}

    async def _cmd_rebirth(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.uplink is None or not self.uplink.connected:
            raise CommandError("uplink not connected")
        self.uplink.publish_state("status", self.birth())
        self.uplink.publish_state("health", self.health_payload())
        return {"boot_id": self.boot_id}

    async def _cmd_reload(self, args: dict[str, Any]) -> dict[str, Any]:
        errors = await self.reload()
        if errors:
            raise CommandError("config rejected, still running the old one: " + "; ".join(errors)[:900])
        return {"config_sha": self.loaded.sha}

    # -- lifecycle -----------------------------------------------------------------------
    async def reload(self) -> list[str]:
        """Re-read the config; on errors keep the running one and return the error lines."""
        try:
            new = await asyncio.to_thread(load, self.loaded.path)
        except ConfigError as exc:
            for line in exc.lines:
                self.log.error("reload_rejected", problem=line)
            return exc.lines
        old_cfg = self.config
        self.loaded, self.config = new, new.config
        cfg = new.config
        setup_logging(cfg.logging.level, dict(cfg.logging.levels))
        if self.spool is not None:
            self.spool.max_bytes = cfg.spool.max_bytes
        if spool_path(cfg) != spool_path(old_cfg) or cfg.data_dir != old_cfg.data_dir:
            self.log.warning("reload_partial", reason="spool path or data_dir changes take effect after a restart")
        wanted = self._enabled()
        for name in list(self.runners):
            if name not in wanted:
                await self.runners.pop(name).stop()
                self.log.info("driver_removed", driver=name)
        for name, (spec, section) in wanted.items():
            runner = self.runners.get(name)
            if runner is not None and runner.config == section:
                continue
            if runner is not None:
                await runner.stop()
            runner = DriverRunner(self, spec, section)
            self.runners[name] = runner
            runner.start()
            self.log.info("driver_configured", driver=name)
        if cfg.coc != old_cfg.coc or cfg.site != old_cfg.site:
            await self._restart_uplink()
        elif self.uplink is not None and self.uplink.connected:
            self.uplink.publish_state("status", self.birth())
        self.log.info("reload_done", config_sha=new.sha, drivers=",".join(sorted(self.runners)))
        self.health_changed()
        return []

    def _reload_in_background(self) -> None:
        """SIGHUP: one reload at a time; a SIGHUP during a reload triggers one more afterwards."""
        self._reload_wanted = True
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.create_task(self._reload_while_wanted(), name="reload")

    async def _reload_while_wanted(self) -> None:
        while self._reload_wanted:
            self._reload_wanted = False
            await self.reload()

    async def _restart_uplink(self) -> None:
        old_router = self.router
        self.router = self._make_router()
        for name, handler in old_router.handlers.items():
            self.router.handlers.setdefault(name, handler)
        if self.uplink is not None:
            await self.uplink.stop()
        if self._uplink_task is not None:
            self._uplink_task.cancel()
        self.uplink = self._make_uplink()
        self._uplink_task = asyncio.create_task(self.uplink.run(), name="uplink")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(spool_path(cfg), cfg.spool.max_bytes, self.boot_id, KvLogger("spool"))
        await asyncio.to_thread(self.spool.open)
        await self._report_spool_notices()
        for sig, handler in ((signal.SIGTERM, self._stop.set), (signal.SIGINT, self._stop.set),
                             (signal.SIGHUP, self._reload_in_background)):
            loop.add_signal_handler(sig, handler)
        self.uplink = self._make_uplink()
        self._uplink_task = asyncio.create_task(self.uplink.run(), name="uplink")
        for name, (spec, section) in self._enabled().items():
            self.runners[name] = DriverRunner(self, spec, section)
            self.runners[name].start()
        self.log.info("agent_started", version=__version__, boot_id=self.boot_id, config=self.loaded.path,
                      config_sha=self.loaded.sha, drivers=",".join(sorted(self.runners)))
        self._tasks = [asyncio.create_task(self._health_loop(), name="health-publisher"),
                       asyncio.create_task(self._watchdog_loop(), name="watchdog")]
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")
        await self._stop.wait()
        return await self._shutdown()

    async def _shutdown(self) -> int:
        self.log.info("agent_stopping", boot_id=self.boot_id)
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        await asyncio.gather(*(r.stop() for r in self.runners.values()))
        for t in self._tasks:
            t.cancel()
        if self.uplink is not None and self.spool is not None and self.uplink.connected:
            deadline = time.monotonic() + 2.0
            while self.spool.depth and time.monotonic() < deadline and self.uplink.connected:
                await asyncio.sleep(0.05)
            self.uplink.publish_state("health", self.health_payload())
        if self.uplink is not None:
            await self.uplink.stop()
        if self._uplink_task is not None:
            self._uplink_task.cancel()
            await asyncio.gather(self._uplink_task, return_exceptions=True)
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
        self._write_status({"stopped": True})
        self.log.info("agent_stopped", boot_id=self.boot_id)
        return 0

    async def _report_spool_notices(self) -> None:
        """A spool moved aside (at start or while running) becomes an event in the fresh spool."""
        while self.spool is not None and self.spool.notices:
            notice = self.spool.notices.pop(0)
            await self.emit("agent", (Event(notice["kind"], notice, severity="warning"),))

    async def _health_loop(self) -> None:
        """Publish retained health on every change (at most once a second) and periodically."""
        period = self.config.health.interval_s
        while True:
            try:
                await asyncio.wait_for(self._health_dirty.wait(), period)
            except TimeoutError:
                pass
            self._health_dirty.clear()
            await self._report_spool_notices()
            payload = self.health_payload()
            if self.uplink is not None:
                self.uplink.publish_state("health", payload)
            self._write_status(payload)
            self.notifier.send(f"STATUS={self.status_line()}")
            await asyncio.sleep(1.0)

    def _write_status(self, payload: dict[str, Any]) -> None:
        """A local copy of the health for `commune-agent status`, written atomically."""
        path = self.config.data_dir / "status.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(payload, default=str))
            os.replace(tmp, path)
        except OSError as exc:
            self.log.warning("status_write_failed", path=path, error=str(exc))

    async def _watchdog_loop(self) -> None:
        """WATCHDOG=1 only while the loop keeps time and the spool writer lives."""
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(interval / 2)
            lag = time.monotonic() - t0 - interval / 2
            writer = self.spool is not None and self.spool.writer_alive()
            if lag < interval and writer:
                self.notifier.send("WATCHDOG=1")
            else:
                self.log.error("watchdog_withheld", loop_lag_s=round(lag, 3), spool_writer=writer)


def run_agent(loaded: LoadedConfig) -> int:
    setup_logging(loaded.config.logging.level, dict(loaded.config.logging.levels))
    return asyncio.run(Supervisor(loaded).run())

