"""Hand-off from source threads to the driver's emit loop: bounded, thread-safe, counted."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from agent.driver import Event, Reading
from agent.logs import KvLogger
from drivers.sensors.formats import DecodeError, Decoder


@dataclass(slots=True)
class Batch:
    """Readings of one message or one poll, from one device."""

    source: str
    device: str
    readings: list[Reading]
    stale_after_s: float | None = None


@dataclass(slots=True)
class SourceStatus:
    """What a source last said about itself, for health and the state file."""

    up: bool = False
    detail: str = ""
    devices_down: dict[str, str] = field(default_factory=dict)


class Ingest:
    """Sources put, the driver loop drains; when full the oldest batches go first (and are counted)."""

    def __init__(self, max_readings: int) -> None:
        self._max = max_readings
        self._lock = threading.Lock()
        self._batches: deque[Batch] = deque()
        self._held = 0
        self._events: list[Event] = []
        self._counts: Counter[str] = Counter()
        self.status: dict[str, SourceStatus] = {}

    def put(self, batch: Batch) -> None:
        with self._lock:
            self._batches.append(batch)
            self._held += len(batch.readings)
            while self._held > self._max and len(self._batches) > 1:
                old = self._batches.popleft()
                self._held -= len(old.readings)
                self._counts["readings_dropped"] += len(old.readings)

    def event(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def set_status(self, source: str, up: bool, detail: str = "") -> None:
        with self._lock:
            st = self.status.setdefault(source, SourceStatus())
            st.up, st.detail = up, detail

    def set_device(self, source: str, device: str, problem: str | None) -> None:
        """problem None = device fine; otherwise why it is degraded/offline."""
        with self._lock:
            st = self.status.setdefault(source, SourceStatus())
            if problem is None:
                st.devices_down.pop(device, None)
            else:
                st.devices_down[device] = problem

    def statuses(self) -> dict[str, SourceStatus]:
        """A copy the event loop can read while source threads keep updating."""
        with self._lock:
            return {k: SourceStatus(v.up, v.detail, dict(v.devices_down)) for k, v in self.status.items()}

    def drain(self) -> tuple[list[Batch], list[Event], Counter[str]]:
        with self._lock:
            batches, self._batches = list(self._batches), deque()
            events, self._events = self._events, []
            counts, self._counts = self._counts, Counter()
            self._held = 0
        return batches, events, counts


class RateLimitedLog:
    """Logs the first problem of a kind, then at most one line per interval with how many were suppressed."""

    def __init__(self, log: KvLogger, interval_s: float = 10.0) -> None:
        self._log = log
        self._interval = interval_s
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warning(self, event: str, key: str, **fields: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next.get(key, 0.0):
                self._suppressed[key] += 1
                return
            self._next[key] = now + self._interval
            suppressed = self._suppressed.pop(key, 0)
        self._log.warning(event, **fields, suppressed=suppressed or None)


def ingest_payload(ingest: Ingest, badlog: RateLimitedLog, decoder: Decoder, payload: bytes, *, source: str,
                   device: str, topic: str = "", stale_after_s: float | None = None) -> int:
    """Decode one message into a Batch; a bad one is counted and logged (rate-limited), never raised."""
    where = topic or source
    try:
        result = decoder.decode(payload, topic)
    except DecodeError as exc:
        ingest.count("bad_payload")
        badlog.warning("bad_payload", key=where, source=source, where=where, reason=str(exc), bytes=len(payload))
        return 0
    if result.problems:
        ingest.count("bad_field", len(result.problems))
        if not result.readings:
            ingest.count("bad_payload")
        badlog.warning("bad_field", key=where + "#field", source=source, where=where, reason="; ".join(result.problems))
    if not result.readings:
        return 0
    now = time.time()
    readings = [Reading(n, v, u, now, {"source": source, "device": device}) for n, v, u in result.readings]
    ingest.put(Batch(source, device, readings, stale_after_s))
    return len(result.readings)
