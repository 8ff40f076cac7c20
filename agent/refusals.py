"""Topics the broker refuses (an MQTT 5 PUBACK >= 0x80): their rows stay in the spool, held back and retried."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from agent.backoff import Backoff
from agent.logs import KvLogger


class _Row(Protocol):
    @property
    def topic(self) -> str: ...


@dataclass
class Refusal:
    """One refused topic: why, how often, and when its next retry is due (monotonic)."""

    reason: str
    backoff: Backoff
    until: float
    count: int = 0
    retried: bool = False  # the due retry was let through; it goes alone until the broker answers it


class RefusalHolds:
    """Per-topic holds with backoff. A held topic's rows wait; once its retry is due the rows are read again
    from the oldest, and while that retry is in flight later rows of the topic wait too, so none overtakes it."""

    def __init__(self, min_s: float, max_s: float, log: KvLogger) -> None:
        self._min_s, self._max_s = min_s, max_s
        self.log = log
        self.topics: dict[str, Refusal] = {}
        self.rejected = 0  # refused PUBACKs, all topics

    def __bool__(self) -> bool:
        return bool(self.topics)

    def __contains__(self, topic: str) -> bool:
        return topic in self.topics

    def refused(self, topic: str, reason: str, now: float) -> None:
        """A PUBACK refused a row of `topic`: hold the topic until its next retry (one backoff step per retry)."""
        self.rejected += 1
        refusal = self.topics.get(topic)
        if refusal is None:
            refusal = self.topics[topic] = Refusal(reason, Backoff(self._min_s, self._max_s, jitter=0.3), 0.0)
        refusal.count += 1
        refusal.reason = reason
        if refusal.until <= now:
            refusal.until = now + refusal.backoff.next()
            refusal.retried = False
            self.log.warning("uplink_publish_refused", topic=topic, reason=reason, kept=True,
                             retry_in_s=round(refusal.until - now, 1))

    def accepted(self, topic: str) -> bool:
        """A row of `topic` was taken: the hold ends; True if there was one (what it held goes now)."""
        if self.topics.pop(topic, None) is None:
            return False
        self.log.info("uplink_topic_accepted", topic=topic)
        return True

    def due(self, now: float) -> bool:
        """True if a retry fell due since the last call (the spool is then read again from the oldest)."""
        fell = False
        for refusal in self.topics.values():
            if refusal.until <= now and not refusal.retried:
                refusal.retried = fell = True
        return fell

    def next_retry(self) -> float:
        """When the next retry falls due (monotonic), inf if none is waiting."""
        return min((r.until for r in self.topics.values() if not r.retried), default=float("inf"))

    def split(self, rows: list[Any], now: float, in_flight: Iterable[_Row]) -> tuple[list[Any], list[Any]]:
        """(rows that may go, rows held back): a held topic's, and a retried topic's while its retry is in
        flight (`in_flight`: rows published and not yet acknowledged)."""
        if not self.topics:
            return rows, []
        busy = {row.topic for row in in_flight if row.topic in self.topics}
        topics = self.topics
        go: list[Any] = []
        held: list[Any] = []
        for row in rows:
            refusal = topics.get(row.topic)
            if refusal is not None and (refusal.until > now or row.topic in busy):
                held.append(row)
            else:
                go.append(row)
        return go, held

    def stats(self, now: float, limit: int) -> dict[str, dict[str, Any]]:
        """The first `limit` refused topics as health shows them."""
        return {t: {"reason": r.reason, "count": r.count, "retry_in_s": round(max(0.0, r.until - now), 1)}
                for t, r in list(self.topics.items())[:limit]}
