"""Threshold alarms (hysteresis, minimum duration) and staleness, as events for the COC."""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass

from agent.driver import Event, Priority, Reading
from drivers.sensors.api import ALARM_CLEARED, ALARM_RAISED
from drivers.sensors.config import AlarmRule


@dataclass
class _Track:
    """One rule applied to one reading of one device."""

    state: str = "normal"  # normal | low | high
    pending: str | None = None  # direction waiting for min_duration
    since: float = 0.0  # monotonic start of the pending excursion
    since_wall: float = 0.0
    last_value: float = 0.0
    unit: str | None = None


class AlarmEngine:
    """Feeds readings through rules; returns alarm / alarm-cleared events at ALARM priority."""

    def __init__(self, rules: list[AlarmRule]) -> None:
        self.rules = rules
        self._tracks: dict[tuple[int, str, str, str], _Track] = {}
        self._match_cache: dict[tuple[str, str], list[int]] = {}

    def _rules_for(self, name: str, device: str) -> list[int]:
        key = (name, device)
        hit = self._match_cache.get(key)
        if hit is None:
            hit = [i for i, r in enumerate(self.rules) if fnmatch.fnmatchcase(name, r.reading)
                   and (r.device is None or fnmatch.fnmatchcase(device, r.device))]
            if len(self._match_cache) < 100_000:
                self._match_cache[key] = hit
        return hit

    def feed(self, readings: list[Reading], now: float) -> list[Event]:
        if not self.rules:
            return []
        events: list[Event] = []
        for r in readings:
            if isinstance(r.value, bool) or not isinstance(r.value, (int, float)):
                continue
            source, device = r.tags.get("source", ""), r.tags.get("device", "")
            for i in self._rules_for(r.name, device):
                key = (i, source, device, r.name)
                track = self._tracks.get(key)
                if track is None:
                    track = self._tracks[key] = _Track()
                track.last_value, track.unit = float(r.value), r.unit
                ev = self._step(self.rules[i], key, track, float(r.value), now)
                if ev is not None:
                    events.append(ev)
        return events

    def tick(self, now: float) -> list[Event]:
        """Raise pending excursions whose minimum duration has passed without a new reading."""
        events = []
        for key, track in self._tracks.items():
            if track.pending is not None:
                ev = self._step(self.rules[key[0]], key, track, track.last_value, now)
                if ev is not None:
                    events.append(ev)
        return events

    def _step(self, rule: AlarmRule, key: tuple[int, str, str, str], t: _Track, v: float, now: float) -> Event | None:
        if t.state == "high":
            if rule.high is not None and v < rule.high - rule.hysteresis:
                return self._clear(rule, key, t, v)
            return None
        if t.state == "low":
            if rule.low is not None and v > rule.low + rule.hysteresis:
                return self._clear(rule, key, t, v)
            return None
        direction = "high" if rule.high is not None and v > rule.high else \
            "low" if rule.low is not None and v < rule.low else None
        if direction is None:
            t.pending = None
            return None
        if t.pending != direction:
            t.pending, t.since, t.since_wall = direction, now, time.time()
        if now - t.since < rule.min_duration_s:
            return None
        t.state, t.pending = direction, None
        threshold = rule.high if direction == "high" else rule.low
        return Event(ALARM_RAISED, self._data(rule, key, t, v, direction, threshold),
                     severity=rule.severity, priority=Priority.ALARM)

    def _clear(self, rule: AlarmRule, key: tuple[int, str, str, str], t: _Track, v: float) -> Event:
        direction = t.state
        t.state, t.pending = "normal", None
        threshold = rule.high if direction == "high" else rule.low
        return Event(ALARM_CLEARED, self._data(rule, key, t, v, direction, threshold),
                     severity="info", priority=Priority.ALARM)

    @staticmethod
    def _data(rule: AlarmRule, key: tuple[int, str, str, str], t: _Track, v: float, direction: str,
              threshold: float | None) -> dict[str, object]:
        _, source, device, name = key
        return {"rule": rule.label, "source": source, "device": device, "reading": name, "value": v,
                "unit": t.unit, "direction": direction, "threshold": threshold, "hysteresis": rule.hysteresis,
                "since": t.since_wall}


@dataclass
class _Freshness:
    stale_after: float
    last: float
    stale: bool = False
    last_wall: float = 0.0


class Staleness:
    """No data from a device for its stale_after_s -> `sensor_stale`; data again -> `sensor_fresh`."""

    def __init__(self) -> None:
        self._devices: dict[tuple[str, str], _Freshness] = {}

    def expect(self, source: str, device: str, stale_after: float, now: float) -> None:
        """A configured device that must report even if it never did."""
        if stale_after > 0:
            self._devices[(source, device)] = _Freshness(stale_after, now)

    def seen(self, source: str, device: str, stale_after: float | None, now: float) -> Event | None:
        key = (source, device)
        f = self._devices.get(key)
        if f is None:
            if stale_after and stale_after > 0 and len(self._devices) < 100_000:
                self._devices[key] = _Freshness(stale_after, now, last_wall=time.time())
            return None
        f.last, f.last_wall = now, time.time()
        if f.stale:
            f.stale = False
            return Event("sensor_fresh", {"source": source, "device": device})
        return None

    def check(self, now: float) -> list[Event]:
        events = []
        for (source, device), f in self._devices.items():
            if not f.stale and now - f.last >= f.stale_after:
                f.stale = True
                events.append(Event("sensor_stale", {"source": source, "device": device,
                                                     "stale_after_s": f.stale_after,
                                                     "last_seen": f.last_wall or None}, severity="warning"))
        return events

    def stale_devices(self) -> list[str]:
        return [f"{s}/{d}" for (s, d), f in self._devices.items() if f.stale]
