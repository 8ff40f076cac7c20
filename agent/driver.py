"""The contract between the core and every driver: what a driver may emit and ask for."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal, Mapping, Protocol, Union
from zoneinfo import ZoneInfo

from agent.logs import KvLogger
from agent.spool import Priority as Priority  # defined next to the eviction; drivers import it from here

HealthState = Literal["starting", "ok", "degraded", "failed"]
Severity = Literal["info", "warning", "critical"]
Scalar = Union[float, int, str, bool, None]


@dataclass(slots=True)
class Reading:
    """One measured value; readings of one emit() travel as one telemetry message."""

    name: str
    value: Scalar
    unit: str | None = None
    ts: float = field(default_factory=time.time)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Event:
    """Something that happened; published on event/{kind}."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "info"
    source: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)
    priority: Priority = Priority.EVENT


@dataclass(slots=True)
class Snapshot:
    """A JPEG that belongs to an event; published raw on snapshot/{camera}/{event_id}."""

    camera: str
    event_id: str
    jpeg: bytes
    priority: Priority = Priority.BULK


@dataclass(slots=True)
class ClipChunk:
    """One piece of an event clip, published raw on clip/{camera}/{clip_id}/{offset}: the COC joins the pieces
    by offset and resumes a broken transfer by asking again from the first offset it lacks."""

    camera: str
    clip_id: str
    offset: int
    data: bytes
    priority: Priority = Priority.BULK


Emittable = Union[Reading, Event, Snapshot, ClipChunk]


@dataclass(slots=True, frozen=True)
class LinkState:
    """Which WAN link carries traffic now, so drivers can go frugal on a metered one."""

    name: str | None = None
    metered: bool = False
    since: float = 0.0
    defer_bulk: bool = False  # the link's data budget holds even urgent bulk (forced clips, urgent downloads)
    slow_telemetry: bool = False  # the link's data budget asks for telemetry at its slow (metered) rate
    budget_pct: float | None = None  # share of the link's data budget used (the larger of day and month)


def health_params(params: Mapping[str, object]) -> dict[str, Scalar]:
    """Parameters as JSON keeps them: numbers, text, booleans; anything else as its text."""
    return {k: v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for k, v in params.items()}


def health_text(template: str, params: Mapping[str, object]) -> str:
    """The English detail line for the journal and health/status.json: the template with its parameters in."""
    if not params:
        return template
    try:
        return template.format_map(params)
    except (KeyError, IndexError, ValueError, AttributeError):  # a template/parameter mismatch must not crash
        return f"{template} {dict(params)}"


class CommandError(Exception):
    """Raised by a command handler: its message becomes the `error` of the result."""


CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


class Context(Protocol):
    """What the supervisor hands to a driver's run()."""

    name: str
    config: Any
    log: KvLogger
    data_dir: Path
    site_id: str
    timezone: ZoneInfo

    async def emit(self, *items: Emittable) -> bool:
        """Store items durably; returns True only after they are committed to the spool, False (counted
        as emit_refused) while the spool cannot write (disk full, read-only): the driver carries on."""

    def health(self, state: HealthState, detail: str = "", **params: Scalar) -> None:
        """Report this driver's state; published on the retained health topic. `detail` is an English template
        ("{n} camera(s) online", a literal), its fields come from params: logs get it filled in, the console
        translates it by template (drivers/console/i18n.py DETAILS)."""

    def count(self, name: str, n: int = 1) -> None:
        """Bump one of this driver's counters (bad payloads, retries, ...)."""

    def write_state(self, name: str | Path, data: Any) -> Awaitable[bool]:
        """Write data as JSON to data_dir/name (or an absolute path) atomically, in a thread: a slow disk never
        stalls the loop. Writes of one file keep their order, a burst collapses into the latest; a failure is logged
        and counted as state_write_failed. Await it to know the outcome, or leave it to run (sync code may)."""

    @property
    def link(self) -> LinkState:
        """The WAN link in use (set by the network driver)."""

    def set_link(self, link: LinkState) -> None:
        """Announce a change of the WAN link in use."""

    @property
    def uplink_connected(self) -> bool:
        """True while the COC broker is reachable."""

    @property
    def max_message_bytes(self) -> int | None:
        """The largest payload the COC's broker takes (its maximum packet size less headers and topic), None
        while no limit is known: size snapshots and file pieces to it, or they are set aside."""

    def on_command(self, name: str, handler: CommandHandler) -> None:
        """Route COC command cmd/{name} to handler; its dict return is the result."""


class Driver(Protocol):
    """A hardware family: one long-running coroutine (its config section is named in drivers/registry.py)."""

    async def run(self, ctx: Context) -> None:
        """Run until cancelled; raising means a crash and the supervisor restarts it."""
