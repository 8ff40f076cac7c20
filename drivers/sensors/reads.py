"""The `sensors` read command: the last reading of each sensor and the alarms standing, kept from what the driver
emits (by the keys of the family's face), for a COC dashboard."""

from __future__ import annotations

from typing import Any

from agent.driver import Event, Reading
from agent.paging import page_of, result_budget
from drivers.sensors.api import ALARM_CLEARED, ALARM_RAISED, alarm_key, reading_key

MAX_KEPT = 10_000  # sensors remembered; a source that invents names without end cannot grow this


class SensorReads:
    """Latest value per (source, device, reading) and the alarms raised and not yet cleared."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.alarms: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.not_kept = 0

    def feed(self, readings: list[Reading], events: list[Event]) -> None:
        for r in readings:
            key = reading_key(r)
            if key not in self.latest and len(self.latest) >= MAX_KEPT:
                self.not_kept += 1
                continue
            self.latest[key] = {"source": key[0], "device": key[1], "name": r.name, "value": r.value,
                                "unit": r.unit, "ts": round(r.ts, 3)}
        for ev in events:
            if ev.kind == ALARM_RAISED:
                self.alarms[alarm_key(ev.data)] = {"id": ev.id, "ts": round(ev.ts, 3), "severity": ev.severity,
                                                   **ev.data}
            elif ev.kind == ALARM_CLEARED:
                self.alarms.pop(alarm_key(ev.data), None)

    def handle_with(self, max_message_bytes: int | None, args: dict[str, Any]) -> dict[str, Any]:
        """`sensors` {page, limit}: a page of sensors by key; the alarms standing (at most 100) in every page."""
        budget = result_budget(max_message_bytes)
        page = page_of([self.latest[k] for k in sorted(self.latest)], int(args.get("page", 0)),
                       int(args.get("limit", 50)), budget // 2)
        alarms = page_of(list(self.alarms.values()), 0, 100, budget // 2)
        return {**page, "alarms": alarms["items"], "alarms_total": alarms["total"], "not_kept": self.not_kept}
