"""What the console knows from watching the agent's emits: recent events, latest readings, active alarms."""

from __future__ import annotations

from collections import deque
from typing import Any

from agent.driver import Emittable, Event, Reading

MAX_EVENTS = 200
MAX_READINGS = 500
MAX_CAMERA_EVENTS = 20


class Feed:
    """Fed by the supervisor's tap on the loop; bounded, so a chatty sensor cannot grow it."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.readings: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.alarms: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.camera_events: dict[str, deque[dict[str, Any]]] = {}

    def __call__(self, source: str, items: tuple[Emittable, ...]) -> None:
        for item in items:
            if isinstance(item, Event):
                self._event(source, item)
            elif isinstance(item, Reading) and source == "sensors":
                tags = item.tags or {}
                key = (tags.get("source", ""), tags.get("device", ""), item.name)
                if key not in self.readings and len(self.readings) >= MAX_READINGS:
                    continue
                self.readings[key] = {"source": key[0], "device": key[1], "name": item.name, "value": item.value,
                                      "unit": item.unit, "ts": item.ts}

    def _event(self, source: str, ev: Event) -> None:
        row = {"id": ev.id, "ts": ev.ts, "kind": ev.kind, "severity": ev.severity, "source": ev.source or source,
               "data": ev.data}
        self.events.appendleft(row)
        d = ev.data
        if ev.kind in ("sensor_alarm", "sensor_alarm_cleared"):
            key = (str(d.get("rule")), str(d.get("source")), str(d.get("device")), str(d.get("reading")))
            if ev.kind == "sensor_alarm":
                self.alarms[key] = row
            else:
                self.alarms.pop(key, None)
        if source == "cameras" and isinstance(d.get("camera"), str):
            self.camera_events.setdefault(d["camera"], deque(maxlen=MAX_CAMERA_EVENTS)).appendleft(row)
