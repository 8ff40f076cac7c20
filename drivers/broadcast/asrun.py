"""Proof of broadcast: one record per airing per zone, kept locally and sent to the COC as an `asrun` event."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.driver import Event
from drivers.broadcast.airtimes import local_iso

Outcome = Literal["played", "failed", "skipped", "interrupted", "unreachable"]


@dataclass
class AsRun:
    bulletin_id: str
    title: str
    zone: str
    priority: str
    repeat: int
    scheduled: float
    outcome: Outcome
    reason: str | None = None
    started: float | None = None
    ended: float | None = None
    engine: str | None = None
    heard: str | None = None  # yes | no | not monitored (the zone's monitor input over the airing)
    level_dbfs: float | None = None  # the monitor's RMS level over the airing

    @property
    def lateness_ms(self) -> float | None:
        return None if self.started is None else round((self.started - self.scheduled) * 1000, 1)

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "lateness_ms": self.lateness_ms}

    def event(self, tz: ZoneInfo) -> Event:
        data = self.record()
        for key in ("scheduled", "started", "ended"):
            if data[key] is not None:
                data[f"{key}_at"] = local_iso(data[key], tz)
        severity = "warning" if self.outcome in ("failed", "interrupted", "unreachable") else "info"
        if self.outcome == "played" and self.heard == "no":
            severity = "warning"
        if self.outcome == "skipped" and self.priority == "emergency":
            severity = "warning"
        return Event(kind="asrun", data=data, severity=severity)
