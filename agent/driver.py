"""The contract between the core and every driver: what a driver may emit and ask for."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal, Protocol, Union
from zoneinfo import ZoneInfo

from agent.logs import KvLogger


class Priority(IntEnum):
    """Spool priority class: when the spool is full the lowest class goes first."""

    BULK = 0
    TELEMETRY = 1
    EVENT = 2
    ALARM = 3


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


Emittable = Union[Reading, Event, Snapshot]


@dataclass(slots=True, frozen=True)
class LinkState:
    """Which WAN link carries traffic now, so drivers can go frugal on a metered one."""

    name: str | None = None
    metered: bool = False
    since: float = 0.0


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

    async def emit(self, *items: Emittable) -> None:
        """Store items durably; returns only after they are committed to the spool."""

    def health(self, state: HealthState, detail: str = "") -> None:
        """Report this driver's state; published on the retained health topic."""

    def count(self, name: str, n: int = 1) -> None:
        """Bump one of this driver's counters (bad payloads, retries, ...)."""

    @property
    def link(self) -> LinkState:
        """The WAN link in use (set by the network driver)."""

    def set_link(self, link: LinkState) -> None:
        """Announce a change of the WAN link in use."""

    @property
    def uplink_connected(self) -> bool:
        """True while the COC broker is reachable."""

    def on_command(self, name: str, handler: CommandHandler) -> None:
        """Route COC command cmd/{name} to handler; its dict return is the result."""


class Driver(Protocol):
    """A hardware family: one long-running coroutine (its config section is named in drivers/registry.py)."""

    async def run(self, ctx: Context) -> None:
        """Run until cancelled; raising means a crash and the supervisor restarts it."""
