"""A Context that records what a driver emits, for driver tests that need no broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.driver import (
    ClipChunk,
    CommandHandler,
    Emittable,
    Event,
    HealthState,
    LinkState,
    Reading,
    Scalar,
    Snapshot,
    health_text,
)
from agent.logs import KvLogger
from agent.statefile import StateFiles


class RecordingContext:
    """Implements agent.driver.Context; everything emitted lands in lists to assert on."""

    def __init__(self, name: str, config: Any, data_dir: Path, site_id: str = "test-site",
                 timezone: str = "Asia/Ho_Chi_Minh") -> None:
        self.name = name
        self.config = config
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.site_id = site_id
        self.timezone = ZoneInfo(timezone)
        self.log = KvLogger(f"driver.{name}")
        self.readings: list[Reading] = []
        self.events: list[Event] = []
        self.snapshots: list[Snapshot] = []
        self.chunks: list[ClipChunk] = []
        self.states: list[tuple[HealthState, str]] = []
        self.counters: Counter[str] = Counter()
        self.commands: dict[str, CommandHandler] = {}
        self._link = LinkState()
        self.connected = True
        self.max_message_bytes: int | None = None  # the broker's limit as the uplink would tell it
        self._state_files = StateFiles(self.data_dir, self.log, self.count)

    async def emit(self, *items: Emittable) -> None:
        for item in items:
            if isinstance(item, Reading):
                self.readings.append(item)
            elif isinstance(item, Event):
                if not item.source:
                    item.source = self.name
                self.events.append(item)
            elif isinstance(item, Snapshot):
                self.snapshots.append(item)
            elif isinstance(item, ClipChunk):
                self.chunks.append(item)
            else:
                raise TypeError(f"cannot emit {type(item).__name__}")
        await asyncio.sleep(0)

    def health(self, state: HealthState, detail: str = "", **params: Scalar) -> None:
        self.states.append((state, health_text(detail, params)))

    @property
    def state(self) -> HealthState | None:
        return self.states[-1][0] if self.states else None

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def write_state(self, name: str | Path, data: Any) -> asyncio.Future[bool]:
        """The supervisor's own writer: off the loop, in order, failures counted as state_write_failed."""
        return self._state_files.write(name, data)

    @property
    def link(self) -> LinkState:
        return self._link

    def set_link(self, link: LinkState) -> None:
        self._link = link

    @property
    def uplink_connected(self) -> bool:
        return self.connected

    def on_command(self, name: str, handler: CommandHandler) -> None:
        self.commands[name] = handler

    def events_of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def readings_named(self, name: str) -> list[Reading]:
        return [r for r in self.readings if r.name == name]
