"""PUBACK tracking for one MQTT connection: paho's thread reports each PUBACK, the event loop waits per batch.

Pending publishes are one `dict[mid, batch]` (as aiomqtt keeps `dict[mid, Future]`), but a batch is woken once,
when its last PUBACK is in, so thousands of acknowledgements a second cost one loop wake-up per batch.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
_ABSENT = object()


@dataclass(eq=False)
class Batch(Generic[T]):
    """What one batch published: `items` by packet id, and the PUBACKs that came for it.

    `results[mid]` is None for an accepted message, else the PUBACK's failure reason (MQTT 5, >= 0x80)."""

    items: dict[int, T]
    sent: float  # monotonic time the batch was handed to paho
    results: dict[int, str | None] = field(default_factory=dict)
    missing: int = 0
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted(self) -> list[T]:
        results = self.results
        return [item for mid, item in self.items.items() if mid in results and results[mid] is None]

    def refused(self) -> list[tuple[T, str]]:
        return [(item, reason) for mid, item in self.items.items()
                if (reason := self.results.get(mid)) is not None]

    def unacknowledged(self) -> list[T]:
        return [item for mid, item in self.items.items() if mid not in self.results]


def reason_text(rc: object) -> str | None:
    """None for a PUBACK that accepts (reason code < 0x80; MQTT 3.1.1 has none), else '<name> (0x..)'."""
    if getattr(rc, "is_failure", False):
        return f"{rc} (0x{getattr(rc, 'value', 0):02x})"
    return None


class PubackTracker(Generic[T]):
    """Matches PUBACKs to the batch that sent them. A PUBACK may come before its batch is tracked (paho sends
    from its own thread), so one that finds no batch waits in `_early` until `track` claims it; PUBACKs of
    publishes that are not the spool's (status, health) are claimed by `ignore` and count for nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float] = time.monotonic) -> None:
        self._loop = loop
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[int, Batch[T]] = {}  # mid -> the batch still missing its PUBACK
        self._early: dict[int, str | None] = {}  # PUBACKs no batch claimed yet
        self._ignored: set[int] = set()  # mids whose PUBACK is not the spool's
        self.progress = clock()  # when a spool message's last PUBACK came

    def puback(self, mid: int, reason: str | None) -> None:
        """One PUBACK (called on paho's thread): `reason` None if accepted, else why the broker refused it."""
        with self._lock:
            if mid in self._ignored:
                self._ignored.discard(mid)
                return
            self.progress = self._clock()
            batch = self._waiting.pop(mid, None)
            if batch is None:
                self._early[mid] = reason
                return
            batch.results[mid] = reason
            batch.missing -= 1
            if batch.missing == 0:
                self._loop.call_soon_threadsafe(batch.complete.set)

    def ignore(self, mid: int) -> None:
        """A publish whose PUBACK must not count for any batch (packet ids wrap at 65535 and come back)."""
        with self._lock:
            if self._early.pop(mid, _ABSENT) is _ABSENT:
                self._ignored.add(mid)

    def track(self, items: dict[int, T], sent: float) -> Batch[T]:
        """Start waiting for `items`' PUBACKs (on the event loop, right after they were handed to paho)."""
        batch: Batch[T] = Batch(items, sent)
        with self._lock:
            early = self._early
            for mid in items:
                reason = early.pop(mid, _ABSENT) if early else _ABSENT
                if reason is _ABSENT:
                    self._waiting[mid] = batch
                else:
                    batch.results[mid] = reason  # type: ignore[assignment]
            batch.missing = len(items) - len(batch.results)
        if batch.missing == 0:
            batch.complete.set()
        return batch

    async def wait(self, batch: Batch[T], patience: float, closed: asyncio.Event) -> bool:
        """Wait until every PUBACK of `batch` is in (True), `closed` is set, or no PUBACK at all came for
        `patience` s since the batch was sent or the last PUBACK (a slow link that still acknowledges waits on).
        Afterwards the batch is settled: a PUBACK still to come for it counts for nothing."""
        if not batch.complete.is_set():
            done = asyncio.ensure_future(batch.complete.wait())
            gone = asyncio.ensure_future(closed.wait())
            try:
                while not (done.done() or gone.done()):
                    left = patience - (self._clock() - max(batch.sent, self.progress))
                    if left <= 0:
                        break
                    await asyncio.wait({done, gone}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done.cancel()
                gone.cancel()
        return self._settle(batch)

    def _settle(self, batch: Batch[T]) -> bool:
        """True if every PUBACK of `batch` is in; else its missing ones are ignored should they still come."""
        with self._lock:
            if batch.missing == 0:
                return True
            for mid in batch.items:
                if self._waiting.get(mid) is batch:
                    del self._waiting[mid]
                    self._ignored.add(mid)
            return False
