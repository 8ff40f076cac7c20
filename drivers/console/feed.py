"""What the console knows from watching the agent's emits: recent events, latest readings, active alarms.

Kept in a state file as well, so a restart of the agent does not empty the status page."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from agent.driver import Emittable, Event, Reading
from agent.statefile import read_json_bounded
from drivers.camera import api as camera
from drivers.sensors import api as sensors

MAX_EVENTS = 200
MAX_READINGS = 500
MAX_CAMERA_EVENTS = 20
MAX_FILE_BYTES = 8 << 20
FEED_FILE = "feed.json"
_EVENT_KEYS = {"id": str, "ts": (int, float), "kind": str, "severity": str, "source": str, "data": dict}
_READING_KEYS = {"source": str, "device": str, "name": str, "ts": (int, float)}


def _event_row(row: Any) -> bool:
    return isinstance(row, dict) and all(isinstance(row.get(k), t) for k, t in _EVENT_KEYS.items())


def _reading_row(row: Any) -> bool:
    return (isinstance(row, dict) and all(isinstance(row.get(k), t) for k, t in _READING_KEYS.items())
            and isinstance(row.get("value"), (int, float, str, bool))
            and isinstance(row.get("unit"), (str, type(None))))


class Feed:
    """Fed by the supervisor's tap on the loop; bounded, so a chatty sensor cannot grow it."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.readings: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.alarms: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.camera_events: dict[str, deque[dict[str, Any]]] = {}
        self.changed = False  # since the last state() was taken for the file

    def state(self) -> dict[str, Any]:
        """What the state file keeps (JSON): taking it marks the feed saved."""
        self.changed = False
        return {"version": 1, "events": list(self.events), "readings": list(self.readings.values()),
                "alarms": list(self.alarms.values()),
                "camera_events": {cam: list(rows) for cam, rows in self.camera_events.items()}}

    def load(self, path: Path) -> str | None:
        """Take up what an earlier run kept; rows of the wrong shape are skipped. The reason when the file
        could not be used at all (None when it was used or is simply not there yet)."""
        doc, problem = read_json_bounded(path, MAX_FILE_BYTES)
        if doc is None:
            return problem
        if not isinstance(doc, dict) or doc.get("version") != 1:
            return "not a feed file (another shape or version)"
        events = doc.get("events")
        for row in reversed(events[:MAX_EVENTS] if isinstance(events, list) else []):
            if _event_row(row):
                self.events.appendleft(row)
        readings = doc.get("readings")
        for row in readings[:MAX_READINGS] if isinstance(readings, list) else []:
            if _reading_row(row):
                self.readings[(row["source"], row["device"], row["name"])] = row
        alarms = doc.get("alarms")
        for row in alarms[:MAX_READINGS] if isinstance(alarms, list) else []:
            if _event_row(row) and row["kind"] == sensors.ALARM_RAISED:
                self.alarms[sensors.alarm_key(row["data"])] = row
        cams = doc.get("camera_events")
        for cam, rows in list(cams.items())[:MAX_READINGS] if isinstance(cams, dict) else []:
            good = [r for r in rows[:MAX_CAMERA_EVENTS] if _event_row(r)] if isinstance(rows, list) else []
            if good:
                self.camera_events[cam] = deque(good, maxlen=MAX_CAMERA_EVENTS)
        return None

    def __call__(self, source: str, items: tuple[Emittable, ...]) -> None:
        for item in items:
            self.changed = True
            if isinstance(item, Event):
                self._event(source, item)
            elif isinstance(item, Reading) and source == sensors.SECTION:
                key = sensors.reading_key(item)
                if key not in self.readings and len(self.readings) >= MAX_READINGS:
                    continue
                self.readings[key] = {"source": key[0], "device": key[1], "name": item.name, "value": item.value,
                                      "unit": item.unit, "ts": item.ts}

    def _event(self, source: str, ev: Event) -> None:
        row = {"id": ev.id, "ts": ev.ts, "kind": ev.kind, "severity": ev.severity, "source": ev.source or source,
               "data": ev.data}
        self.events.appendleft(row)
        d = ev.data
        if ev.kind in (sensors.ALARM_RAISED, sensors.ALARM_CLEARED):
            key = sensors.alarm_key(d)
            if ev.kind == sensors.ALARM_RAISED:
                self.alarms[key] = row
            else:
                self.alarms.pop(key, None)
        cam = camera.camera_of(d) if source == camera.SECTION else None
        if cam is not None:
            self.camera_events.setdefault(cam, deque(maxlen=MAX_CAMERA_EVENTS)).appendleft(row)
