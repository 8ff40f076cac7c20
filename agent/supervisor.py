"""Starts drivers and the core tasks, restarts a crashed one with capped backoff, publishes health,
serialises reloads, handles signals, and shuts down inside systemd's stop timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from agent import __version__
from agent.audit import audit_event
from agent.backoff import Backoff
from agent.changes import ChangeTracker
from agent.commands import CommandRouter, ReplayMemory
from agent.config import ConfigError, LoadedConfig, load, spool_path
from agent.driver import (
    CommandError,
    CommandHandler,
    Emittable,
    Event,
    HealthState,
    LinkState,
    Scalar,
    health_params,
    health_text,
)
from agent.health_digest import digest as health_digest
from agent.history import History
from agent.logs import KvLogger, setup_logging
from agent.masking import mask
from agent.notify import Notifier
from agent.paging import page_of, result_budget
from agent.payloads import event_dict, to_json, to_records
from agent.remote_config import RemoteConfig, recover_interrupted
from agent.report_by_exception import ReportByException
from agent.section import read_key_file
from agent.self_update import SelfUpdate
from agent.signing import read_public_key
from agent.spool import Spool, SpoolClosed, SpoolUnavailable
from agent.statefile import StateFiles, write_json_logged
from agent.uplink import SOCKET_TIMEOUT_S, Uplink
from drivers.registry import SPECS, DriverSpec, load_object

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
CORE_BACKOFF_MAX_S = 30.0
HEALTHY_RUN_S = 60.0  # a task that ran this long before crashing starts again from the minimum backoff
STOP_TIMEOUT_S = 3.0
# Everything SIGTERM does fits in this; systemd's TimeoutStopSec (30 s) leaves a wide margin.
SHUTDOWN_BUDGET_S = 12.0
REPLAY_FILE = "commands-replay.json"
HISTORY_FILE = "history.db"  # delivered events for the COC's catch_up (agent/history.py)
GATE_SETTLE_S = 2.0  # the gate's conditions must hold this long: a driver that fails at once does not pass

ExtraDrivers = Callable[[], dict[str, tuple[DriverSpec, Any]]]


class DriverContext:
    """The Context a driver sees; everything goes through its supervisor."""

    def __init__(self, sup: Supervisor, supervised: SupervisedDriver, data_dir: Path) -> None:
        self._sup = sup
        self._supervised = supervised
        self.name = supervised.spec.section
        self.config = supervised.config
        self.log = KvLogger(f"driver.{self.name}")
        self.data_dir = data_dir
        self.site_id = sup.config.site.site_id
        self.timezone = ZoneInfo(sup.config.site.timezone)
        self._state_files = StateFiles(data_dir, self.log, self.count)

    async def emit(self, *items: Emittable) -> bool:
        """True once stored; False while the spool cannot store anything (counted as emit_refused) or when it
        dropped something for space (emit_dropped)."""
        return await self._sup.emit(self.name, items, self._supervised.counters)

    def health(self, state: HealthState, detail: str = "", **params: Scalar) -> None:
        self._supervised.set_state(state, detail, params)

    def count(self, name: str, n: int = 1) -> None:
        self._supervised.counters[name] += n

    def write_state(self, name: str | Path, data: Any) -> asyncio.Future[bool]:
        """data as JSON at data_dir/name, atomically and off the loop; a failure counts as state_write_failed."""
        return self._state_files.write(name, data)

    @property
    def link(self) -> LinkState:
        return self._sup.link

    def set_link(self, link: LinkState) -> None:
        self._sup.set_link(link)

    @property
    def uplink_connected(self) -> bool:
        return self._sup.uplink is not None and self._sup.uplink.connected

    @property
    def max_message_bytes(self) -> int | None:
        return self._sup.uplink.max_payload_bytes if self._sup.uplink is not None else None

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


def ended_by_supervisor() -> bool:
    """True when the running task itself was asked to stop (Task.cancelling()): a CancelledError that escaped
    from inside (a library cancelling its own task) is a crash to restart, and no error ends a stop in a restart."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class Restarts:
    """Crash bookkeeping shared by drivers and core tasks: counts, last error, and the pause before the next
    start (a run that lasted HEALTHY_RUN_S starts again from the minimum delay)."""

    def __init__(self, high_s: float) -> None:
        self.restarts = 0
        self.last_error = ""
        self._backoff = Backoff(BACKOFF_MIN_S, high_s)

    def crashed(self, exc: BaseException, started: float) -> float:
        """Record a crash of a run that began at monotonic `started`; returns the delay before the next run."""
        self.restarts += 1
        why = str(exc) or ("cancelled by something other than the supervisor"
                           if isinstance(exc, asyncio.CancelledError) else "")
        self.last_error = f"{type(exc).__name__}: {why}"[:300]
        if time.monotonic() - started > HEALTHY_RUN_S:
            self._backoff.reset()
        return self._backoff.next()


class SupervisedDriver(Restarts):
    """Keeps one driver running: restarts it after a crash with capped exponential backoff."""

    def __init__(self, sup: Supervisor, spec: DriverSpec, config: Any) -> None:
        super().__init__(BACKOFF_MAX_S)
        self.sup = sup
        self.spec = spec
        self.config = config
        self.state: HealthState = "starting"
        self.detail = ""
        self.detail_template = ""
        self.detail_params: dict[str, Scalar] = {}
        self.since = time.time()
        self.counters: Counter[str] = Counter()
        self.task: asyncio.Task[None] | None = None
        self.log = KvLogger("supervisor")

    def set_state(self, state: HealthState, template: str = "", params: dict[str, object] | None = None) -> None:
        """The English text goes to the log and `detail`; template and parameters to the doc for translation."""
        plain = health_params(params or {})
        text = health_text(template, plain)
        if (state, text, template) == (self.state, self.detail, self.detail_template):
            return
        self.log.info("driver_state", driver=self.spec.section, state=state, detail=text or None)
        self.state, self.detail, self.since = state, text, time.time()
        self.detail_template, self.detail_params = template, plain
        self.sup.health_changed()

    def start(self, after: asyncio.Task[None] | None = None) -> None:
        """Start the driver; with `after`, only once that (old instance's) task has ended: never two at once."""
        if after is None or after.done():
            self.task = asyncio.create_task(self._run_forever(), name=f"driver-{self.spec.section}")
            return
        self.log.warning("driver_start_deferred", driver=self.spec.section, reason="old instance still stopping")

        async def when_gone() -> None:
            await asyncio.wait({after})
            task = asyncio.current_task()
            if task is not None:
                task.set_name(f"driver-{self.spec.section}")  # counted as an instance from now on
            await self._run_forever()

        self.task = asyncio.create_task(when_gone(), name=f"waiting-driver-{self.spec.section}")

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> asyncio.Task[None] | None:
        """Cancel and wait up to timeout; returns the task if it has not ended yet."""
        task, self.task = self.task, None
        if task is None:
            return None
        task.cancel()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception as exc:
            self.log.warning("driver_stop_error", driver=self.spec.section, error=str(exc))
        if not task.done():
            self.log.warning("driver_stop_slow", driver=self.spec.section, waited_s=timeout)
            return task
        return None

    async def _run_forever(self) -> None:
        self._backoff.reset()
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
            except (Exception, asyncio.CancelledError) as exc:
                if ended_by_supervisor():
                    raise
                delay = self.crashed(exc, started)
                self.log.exception("driver_crashed", exc, driver=name, restarts=self.restarts, restart_in_s=delay)
                self.set_state("failed", "{error}", {"error": self.last_error})
                await asyncio.sleep(delay)

    def state_doc(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "detail_template": self.detail_template,
                "detail_params": self.detail_params, "since": round(self.since, 3), "restarts": self.restarts,
                "last_error": self.last_error or None, "counters": dict(self.counters)}


class CoreTask(Restarts):
    """One long-lived task of the core (uplink, health publisher, reloader): restarted with backoff
    when it fails or ends, and reported; the watchdog is withheld while one is down."""

    def __init__(self, name: str, factory: Callable[[], Awaitable[None]], on_change: Callable[[], None]) -> None:
        super().__init__(CORE_BACKOFF_MAX_S)
        self.name = name
        self.factory = factory
        self.on_change = on_change
        self.state = "starting"  # running | failed
        self.since = time.time()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False  # set before its work is asked to end on purpose (uplink.stop())
        self.log = KvLogger("supervisor")

    def start(self) -> CoreTask:
        self.task = asyncio.create_task(self._keep(), name=f"core-{self.name}")
        return self

    @property
    def alive(self) -> bool:
        return self.state == "running" and self.task is not None and not self.task.done()

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, time.time()
            self.on_change()

    async def _keep(self) -> None:
        while True:
            started = time.monotonic()
            self._set("running")
            try:
                await self.factory()
                if self.stopping:
                    self._set("stopped")
                    return
                raise RuntimeError("task ended; core tasks run until cancelled")
            except (Exception, asyncio.CancelledError) as exc:
                if ended_by_supervisor():
                    raise
                if self.stopping:  # its work was asked to end (uplink.stop()) and ended this way
                    self._set("stopped")
                    return
                delay = self.crashed(exc, started)
                self.log.exception("task_crashed", exc, task=self.name, restarts=self.restarts, restart_in_s=delay)
                self._set("failed")
                await asyncio.sleep(delay)

    async def stop(self, timeout: float) -> None:
        self.stopping = True
        task, self.task = self.task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task}, timeout=max(0.01, timeout))

    def state_doc(self) -> dict[str, Any]:
        return {"state": self.state, "since": round(self.since, 3), "restarts": self.restarts,
                "last_error": self.last_error or None}


@dataclass
class _PendingEvent:
    """A core event (spool fault) not yet stored: sent live if the spool refuses it, stored once it can."""

    event: Event
    sent_live: bool = False


class Supervisor:
    """The agent process: the only global state lives here."""

    def __init__(self, loaded: LoadedConfig, extra: ExtraDrivers | None = None) -> None:
        self.loaded = loaded
        self._extra: ExtraDrivers = extra or dict
        self.config = loaded.config
        self.boot_id = uuid.uuid4().hex
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.log = KvLogger("supervisor")
        self.link = LinkState()
        self.drivers: dict[str, SupervisedDriver] = {}
        self.taps: list[Callable[[str, tuple[Emittable, ...]], None]] = []
        self.spool: Spool | None = None
        self.uplink: Uplink | None = None
        self.history = History(self.config.data_dir / HISTORY_FILE, KvLogger("history"))
        self.router = self._make_router(self.config, read_key_file(self.config.coc.command_key_file)
                                        if self.config.coc.command_key_file else None)
        self.changes = ChangeTracker(self.config.data_dir / "fleet" / "change.json", self._emit_core_event,
                                     self.health_changed)
        self.remote_config = RemoteConfig(self)
        self.remote_config.register()
        self.self_update = SelfUpdate(self)
        self.self_update.register()
        self.exit_code = 0
        self.config_version: dict[str, Any] | None = None
        self.report_by_exception = ReportByException(self.config.telemetry)
        self.notifier = Notifier()
        self.emit_refused = 0
        self._refusing = False
        self.core: dict[str, CoreTask] = {}
        self._stop = asyncio.Event()
        self._health_dirty = asyncio.Event()
        self._watchdog_task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._reload_wanted = asyncio.Event()
        self._pending_events: list[_PendingEvent] = []

    # -- wiring --------------------------------------------------------------------------
    def _make_router(self, cfg: Any, key: bytes | None, replay: ReplayMemory | None = None) -> CommandRouter:
        coc = cfg.coc
        router = CommandRouter(KvLogger("commands"), coc.max_command_bytes, key, coc.command_window_s,
                               cfg.site.site_id, cfg.data_dir / REPLAY_FILE, replay=replay)
        router.register("ping", self._cmd_ping)
        router.register("rebirth", self._cmd_rebirth)
        router.register("reload", self._cmd_reload)
        router.register("config_get", self._cmd_config_get)
        router.register("catch_up", self._cmd_catch_up)
        fleet = cfg.fleet
        router.change_key = read_public_key(fleet.change_key_file) if fleet.change_key_file else None
        return router

    def _make_uplink(self) -> Uplink:
        assert self.spool is not None
        return Uplink(self.config.coc, self.config.site.site_id, self.spool, self.boot_id, self.router,
                      self.birth, self.health_payload, KvLogger("uplink"), self.health_changed, self.history)

    def _enabled(self, cfg: Any = None) -> dict[str, tuple[DriverSpec, Any]]:
        out = {}
        for spec in SPECS:
            section = getattr(cfg if cfg is not None else self.config, spec.section, None)
            if section is not None and getattr(section, "enabled", True):
                out[spec.section] = (spec, section)
        out.update(self._extra())
        return out

    # -- what drivers call ---------------------------------------------------------------
    async def emit(self, source: str, items: tuple[Emittable, ...], counters: Counter[str] | None = None) -> bool:
        """Store items; True only if every one is durable. False when the spool refuses them (degraded: disk full,
        I/O, read-only) or dropped one for space (full of higher priority); `counters` get emit_refused or
        emit_dropped for it. The COC sees a drop as a seq gap and a spool_dropped event."""
        assert self.spool is not None
        records = to_records(source, self.report_by_exception.keep(source, items),
                             historical=not (self.uplink and self.uplink.connected))
        for listener in list(self.taps):
            try:
                listener(source, items)
            except Exception as exc:  # a watcher's bug must not lose a reading
                self.log.exception("tap_failed", exc, source=source)
        if records:
            try:
                dropped = await self.spool.put(records)
            except (SpoolUnavailable, SpoolClosed):
                self.emit_refused += len(records)
                if counters is not None:
                    counters["emit_refused"] += 1
                if not self._refusing:  # health shows the first refusal of each episode at once
                    self._refusing = True
                    self.health_changed()
                return False
            self._refusing = False
            if self.uplink is not None:
                self.uplink.wakeup.set()
            if dropped:
                if counters is not None:
                    counters["emit_dropped"] += 1
                return False
        return True

    def set_link(self, link: LinkState) -> None:
        def verdict(s: LinkState) -> tuple[Any, ...]:
            return s.name, s.metered, s.defer_bulk, s.slow_telemetry

        if verdict(link) != verdict(self.link):
            self.log.info("link_in_use", link=link.name, metered=link.metered, defer_bulk=link.defer_bulk,
                          slow_telemetry=link.slow_telemetry)
            self.link = link
            self.health_changed()
        elif link.budget_pct != self.link.budget_pct:  # the same link, its budget a little more used
            self.link = dataclasses.replace(self.link, budget_pct=link.budget_pct)
            self.health_changed()

    def health_changed(self) -> None:
        self._health_dirty.set()

    # -- payloads ------------------------------------------------------------------------
    def birth(self) -> dict[str, Any]:
        return {"online": True, "boot_id": self.boot_id, "version": __version__, "config_sha": self.loaded.sha,
                "started_at": self.started_at, "hostname": socket.gethostname(),
                "site": {"site_id": self.config.site.site_id, "name": self.config.site.name},
                "drivers": sorted(self.drivers), **self.versions()}

    def versions(self) -> dict[str, Any]:
        """What the fleet view shows of a box: what runs, which configuration, and the change in progress."""
        return {"agent_version": __version__, "release": self.self_update.release,
                "config_version": self.config_version, "change": self.changes.doc}

    def config_version_changed(self, publish: bool = True) -> None:
        """Record (and show) the configuration version in force, after a start, a reload or a gate's end."""
        version = self.remote_config.running_version()
        self.config_version = version.ref() if version is not None else None
        if publish and self.uplink is not None and self.uplink.connected:
            self.uplink.publish_state("status", self.birth())
        self.health_changed()

    async def health_gate(self, ok_drivers: set[str], timeout_s: float) -> str | None:
        """None once the COC is reached with the settings in force and every driver of ok_drivers still
        configured is ok, for GATE_SETTLE_S; otherwise, after timeout_s, what was still wrong."""
        deadline = time.monotonic() + timeout_s
        held_since: float | None = None
        while True:
            wrong = self._gate_wrong(ok_drivers)
            now = time.monotonic()
            if not wrong:
                held_since = held_since if held_since is not None else now
                if now - held_since >= GATE_SETTLE_S:
                    return None
            else:
                held_since = None
            if now >= deadline:
                return f"health gate not passed in {timeout_s:g} s: " + "; ".join(wrong or ["not settled"])
            await asyncio.sleep(0.2)

    def _gate_wrong(self, ok_drivers: set[str]) -> list[str]:
        wrong = []
        up = self.uplink
        if up is None or not up.connected:
            state = f"{up.state} {up.detail}".strip() if up is not None else "none"
            wrong.append(f"COC not reached (uplink {state})")
        for name in sorted(ok_drivers):
            d = self.drivers.get(name)
            if d is not None and d.state != "ok":
                wrong.append(f"driver {name} {d.state}" + (f" ({d.detail})" if d.detail else ""))
        return wrong

    async def _emit_core_event(self, event: Event) -> bool:
        return await self.emit("agent", (event,))

    def core_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.spool.stats() if self.spool else {}
        stats["uplink_connected"] = bool(self.uplink and self.uplink.connected)
        return stats

    def driver_instances(self) -> dict[str, int]:
        """Live driver tasks by driver, counted from the loop itself (a reload must leave exactly one)."""
        names = Counter(t.get_name() for t in asyncio.all_tasks() if not t.done())
        return {n.removeprefix("driver-"): c for n, c in names.items() if n.startswith("driver-")}

    def health_payload(self) -> dict[str, Any]:
        spool = self.spool.stats() if self.spool else {}
        spool["emit_refused"] = self.emit_refused
        spool["history_write_failed"] = self.history.failures
        return {"ts": round(time.time(), 3), "boot_id": self.boot_id, "pid": os.getpid(),
                "drivers": {n: r.state_doc() for n, r in sorted(self.drivers.items())},
                "driver_instances": self.driver_instances(),
                "core": {n: t.state_doc() for n, t in sorted(self.core.items())},
                "spool": spool,
                "uplink": self.uplink.stats() if self.uplink else {},
                "link": {"name": self.link.name, "metered": self.link.metered, "since": self.link.since or None,
                         "defer_bulk": self.link.defer_bulk, "slow_telemetry": self.link.slow_telemetry,
                         "budget_pct": self.link.budget_pct},
                "commands": dict(self.router.counters), "telemetry_held": self.report_by_exception.held,
                **self.versions()}

    def status_line(self) -> str:
        ok = sum(1 for r in self.drivers.values() if r.state == "ok")
        depth = self.spool.depth if self.spool else 0
        state = self.spool.state if self.spool else "none"
        up = self.uplink.state if self.uplink else "none"
        return (f"uplink={up} spool={depth} spool_state={state} drivers_ok={ok}/{len(self.drivers)} "
                f"link={self.link.name or '-'}")

    # -- commands ------------------------------------------------------------------------
    async def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "boot_id": self.boot_id, "agent_version": __version__,
                "config_version": self.config_version, "config_sha": self.loaded.sha}

    async def _cmd_config_get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The running configuration by top-level section, secrets masked as the console shows it, paged."""
        data = mask(self.config.model_dump(mode="json"))
        items = [{"section": k, "value": v} for k, v in data.items()]
        budget = result_budget(self.uplink.max_payload_bytes if self.uplink is not None else None)
        return {"config_version": self.config_version, "config_sha": self.loaded.sha,
                **page_of(items, int(args.get("page", 0)), int(args.get("limit", 50)), budget)}

    async def _cmd_catch_up(self, args: dict[str, Any]) -> dict[str, Any]:
        """What the COC missed while away, from the history of delivered events, paged."""
        since_ts, since_seq, boot_id = args.get("since_ts"), args.get("since_seq"), args.get("boot_id")
        if (since_ts is None) == (since_seq is None):
            raise CommandError("give exactly one of since_ts or since_seq")
        if since_seq is not None and boot_id is None:
            boot_id = self.boot_id
        budget = result_budget(self.uplink.max_payload_bytes if self.uplink is not None else None)
        return await asyncio.to_thread(self.history.page, since_ts, boot_id, since_seq, args.get("kinds"),
                                       int(args.get("page", 0)), int(args.get("limit", 50)), budget)

    async def _cmd_rebirth(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.uplink is None or not self.uplink.connected:
            raise CommandError("uplink not connected")
        self.uplink.publish_state("status", self.birth())
        self.uplink.publish_state("health", self.health_payload())
        return {"boot_id": self.boot_id}

    async def _cmd_reload(self, args: dict[str, Any]) -> dict[str, Any]:
        errors = await self.reload()
        await self.emit("agent", (audit_event("coc", "config_reload", self.loaded.sha, ok=not errors,
                                              detail="; ".join(errors)),))
        if errors:
            raise CommandError("config rejected, still running the old one: " + "; ".join(errors)[:900])
        return {"config_sha": self.loaded.sha}

    # -- lifecycle -----------------------------------------------------------------------
    async def reload(self) -> list[str]:
        """Re-read the config, one reload at a time whatever asked for it (SIGHUP, COC `reload`).

        Everything that can fail is checked before anything changes: on errors the running config
        stays wholly in force and the error lines are returned."""
        async with self._reload_lock:
            return await self._reload_locked()

    async def _reload_locked(self) -> list[str]:
        try:
            new = await asyncio.to_thread(load, self.loaded.path)
            cfg = new.config
            key = await asyncio.to_thread(read_key_file, cfg.coc.command_key_file) \
                if cfg.coc.command_key_file else None
            change_key = await asyncio.to_thread(read_public_key, cfg.fleet.change_key_file) \
                if cfg.fleet.change_key_file else None
            wanted = self._enabled(cfg)
        except ConfigError as exc:
            for line in exc.lines:
                self.log.error("reload_rejected", problem=line)
            return exc.lines
        except ValueError as exc:  # a key file changed between validation and reading
            line = f"config error: key file: {exc}"
            self.log.error("reload_rejected", problem=line)
            return [line]
        old_cfg = self.config
        self.loaded, self.config = new, cfg
        setup_logging(cfg.logging.level, dict(cfg.logging.levels))
        if self.spool is not None:
            self.spool.max_bytes = cfg.spool.max_bytes
        self.report_by_exception.cfg = cfg.telemetry
        if spool_path(cfg) != spool_path(old_cfg) or cfg.data_dir != old_cfg.data_dir:
            self.log.warning("reload_partial", reason="spool path or data_dir changes take effect after a restart")
        for name in list(self.drivers):
            if name not in wanted:
                await self.drivers.pop(name).stop()
                self.log.info("driver_removed", driver=name)
        for name, (spec, section) in wanted.items():
            supervised = self.drivers.get(name)
            if supervised is not None and supervised.config == section:
                continue
            lingering = await supervised.stop() if supervised is not None else None
            supervised = SupervisedDriver(self, spec, section)
            self.drivers[name] = supervised
            supervised.start(after=lingering)
            self.log.info("driver_configured", driver=name)
        self.router.change_key = change_key
        self.config_version_changed(publish=False)
        if cfg.coc != old_cfg.coc or cfg.site != old_cfg.site:
            await self._restart_uplink(key)
        else:
            self._use_key(key)
            if self.uplink is not None and self.uplink.connected:
                self.uplink.publish_state("status", self.birth())
        self.log.info("reload_done", config_sha=new.sha, drivers=",".join(sorted(self.drivers)))
        self.health_changed()
        return []

    def _reload_requested(self) -> None:
        """SIGHUP: wake the reloader; SIGHUPs during a reload coalesce into one more afterwards."""
        self._reload_wanted.set()

    async def _reloader(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await self.reload()

    def _use_key(self, key: bytes | None) -> None:
        """Key material, not the file's path, decides: a key rewritten in place (a rotation) is in force now."""
        if key != self.router.key:
            self.router.key = key
            self.log.info("command_key_changed", signing="on" if key is not None else "off")

    async def _restart_uplink(self, key: bytes | None) -> None:
        old_router = self.router
        self.router = self._make_router(self.config, old_router.key, old_router.replay)
        self._use_key(key)
        for name, handler in old_router.handlers.items():
            if name not in self.router.handlers:
                self.router.register(name, handler, change=name in old_router.change_names)
        old = self.uplink
        task = self.core.pop("uplink", None)
        if task is not None:
            task.stopping = True
        if old is not None:
            await old.stop()
        if task is not None:
            await task.stop(SOCKET_TIMEOUT_S + 1)
        if old is not None:
            await old.wait_orphans(SOCKET_TIMEOUT_S + 1)  # a client abandoned mid-connect must not race the new one
        self.uplink = self._make_uplink()
        self._start_core("uplink", self._run_uplink)

    async def _run_uplink(self) -> None:
        assert self.uplink is not None
        await self.uplink.run()

    def _start_core(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self.core[name] = CoreTask(name, factory, self.health_changed).start()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(spool_path(cfg), cfg.spool.max_bytes, self.boot_id, KvLogger("spool"))
        await asyncio.to_thread(self.spool.open)
        await self._report_spool_notices()
        self.config_version_changed(publish=False)
        await self.remote_config.report_recovered()
        for sig, handler in ((signal.SIGTERM, self._stop.set), (signal.SIGINT, self._stop.set),
                             (signal.SIGHUP, self._reload_requested)):
            loop.add_signal_handler(sig, handler)
        self.uplink = self._make_uplink()
        self._start_core("uplink", self._run_uplink)
        for name, (spec, section) in self._enabled().items():
            self.drivers[name] = SupervisedDriver(self, spec, section)
            self.drivers[name].start()
        self.log.info("agent_started", version=__version__, boot_id=self.boot_id, config=self.loaded.path,
                      config_sha=self.loaded.sha, drivers=",".join(sorted(self.drivers)))
        self._start_core("health-publisher", self._health_loop)
        self._start_core("reloader", self._reloader)
        self._watchdog_task = asyncio.create_task(self._watchdog_loop(), name="watchdog")
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")
        await self.self_update.start()
        await self._stop.wait()
        return await self._shutdown()

    def request_exit(self, code: int) -> None:
        """Stop as SIGTERM does, then exit with `code` (75: restart into a new release under the unit)."""
        self.exit_code = code
        self._stop.set()

    async def _shutdown(self) -> int:
        """Stop within SHUTDOWN_BUDGET_S whatever hangs: every step gets at most what is left."""
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S

        def left(cap: float) -> float:
            return max(0.05, min(cap, deadline - time.monotonic() - 2.0))  # 2 s kept for the spool's commit

        self.log.info("agent_stopping", boot_id=self.boot_id)
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
        for name in ("reloader", "health-publisher"):
            task = self.core.pop(name, None)
            if task is not None:
                await task.stop(left(1.0))
        await asyncio.gather(*(r.stop(left(STOP_TIMEOUT_S)) for r in self.drivers.values()))
        if self.uplink is not None and self.spool is not None and self.uplink.connected:
            until = time.monotonic() + left(1.5)
            while self.spool.depth and time.monotonic() < until and self.uplink.connected:
                await asyncio.sleep(0.05)
            self.uplink.publish_state("health", self.health_payload())
        if "uplink" in self.core:
            self.core["uplink"].stopping = True
        if self.uplink is not None:
            try:
                async with asyncio.timeout(left(2.5)):
                    await self.uplink.stop(left(2.0))
            except TimeoutError:
                self.log.warning("uplink_stop_slow")
        uplink_task = self.core.pop("uplink", None)
        if uplink_task is not None:
            await uplink_task.stop(left(SOCKET_TIMEOUT_S + 1))
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
        await asyncio.to_thread(self.history.close)
        self._write_status({"stopped": True, "boot_id": self.boot_id})
        self.log.info("agent_stopped", boot_id=self.boot_id)
        return self.exit_code

    async def _report_spool_notices(self) -> None:
        """Spool faults (corrupt, degraded, resumed) become events: stored when the spool can take
        them, and sent live at once when it cannot."""
        while self.spool is not None and self.spool.notices:
            notice = self.spool.notices.pop(0)
            severity = "info" if notice["kind"] == "spool_resumed" else "warning"
            self._pending_events.append(_PendingEvent(Event(notice["kind"], notice, severity=severity,
                                                            source="agent")))
        still: list[_PendingEvent] = []
        for pending in self._pending_events:
            if await self.emit("agent", (pending.event,)):
                continue
            if not pending.sent_live and self.uplink is not None:
                body = dict(event_dict(pending.event), historical=False)
                pending.sent_live = self.uplink.publish_direct(f"event/{pending.event.kind}", to_json(body))
            still.append(pending)
        self._pending_events = still[-100:]

    async def _health_loop(self) -> None:
        """Keep status.json current on every change (at most once a second); publish the retained health when
        something an operator would act on changed (health_digest) and every host.interval_s; spool faults are
        looked at every second (the writer thread cannot wake the loop itself)."""
        written = sent = 0.0
        sent_digest: Any = None
        while True:
            try:
                async with asyncio.timeout(1.0):
                    await self._health_dirty.wait()
            except TimeoutError:
                pass
            if self.spool is not None and self.spool.notices:
                self._health_dirty.set()
            if self._pending_events:
                await self._report_spool_notices()
            now = time.monotonic()
            periodic = now - sent >= self.config.coc.health_interval_s
            if not self._health_dirty.is_set() and not periodic and now - written < self.config.host.interval_s:
                continue
            written = now
            self._health_dirty.clear()
            await self._report_spool_notices()
            payload = self.health_payload()
            if self.uplink is not None:
                news = health_digest(payload)
                if periodic or news != sent_digest:  # offline, it is sent at the next connect anyway
                    sent, sent_digest = now, news if self.uplink.publish_state("health", payload) else None
                if self.changes.doc is not None and not self.changes.published and self.uplink.connected:
                    self.changes.published = self.uplink.publish_state("change", self.changes.doc)
            self._write_status(payload)
            self.notifier.send(f"STATUS={self.status_line()}")
            await asyncio.sleep(1.0)

    def _write_status(self, payload: dict[str, Any]) -> None:
        """A local copy of the health for `commune-agent status`."""
        write_json_logged(self.config.data_dir / "status.json", payload, self.log, indent=None)

    async def _watchdog_loop(self) -> None:
        """WATCHDOG=1 only while the loop keeps time, the spool writer lives and every core task runs."""
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(interval / 2)
            lag = time.monotonic() - t0 - interval / 2
            writer = self.spool is not None and self.spool.writer_alive()
            down = sorted(n for n, t in self.core.items() if not t.alive)
            if lag < interval and writer and not down:
                self.notifier.send("WATCHDOG=1")
            else:
                self.log.error("watchdog_withheld", loop_lag_s=round(lag, 3), spool_writer=writer,
                               tasks_down=",".join(down) or None)


def run_agent(loaded: LoadedConfig) -> int:
    setup_logging(loaded.config.logging.level, dict(loaded.config.logging.levels))
    if recover_interrupted(loaded.path) is not None:  # no guard ran before this start: undo here, then read again
        loaded = load(loaded.path)
    return run_supervisor(Supervisor(loaded))


def run_supervisor(sup: Supervisor) -> int:
    """Run until stopped; a thread stuck in a blocking call cannot hold the process past systemd's timeout."""
    loop = asyncio.new_event_loop()
    try:
        rc = loop.run_until_complete(sup.run())
        rest = asyncio.all_tasks(loop)
        for task in rest:
            task.cancel()
        if rest:
            loop.run_until_complete(asyncio.wait(rest, timeout=1.0))
    finally:
        loop.close()  # does not wait for executor threads (asyncio.run would, without a limit)
    deadline = time.monotonic() + 1.0
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck:
        KvLogger("supervisor").warning("shutdown_forced", threads=",".join(stuck))
        logging.shutdown()
        os._exit(rc)
    return rc
