"""Probe samples of one target over a sliding time window: loss, RTT min/avg/max, jitter."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterator


@dataclass(slots=True)
class Sample:
    """One probe: when it left, and its RTT once answered (None while pending or when it failed)."""

    target: str
    sent: float
    timeout: float
    rtt: float | None = None
    failed: bool = False  # definitively lost: an error, or no answer within the hard timeout

    @property
    def answered(self) -> bool:
        return self.rtt is not None

    @property
    def hard_timeout(self) -> float:
        """After this the probe is lost for good (loss %); until then a late answer still counts."""
        return hard_timeout(self.timeout)

    def prompt(self) -> bool:
        """Answered within its timeout: only this counts as good when judging recovery."""
        return self.rtt is not None and self.rtt <= self.timeout

    def timed_out(self, now: float) -> bool:
        """No answer yet although the timeout has passed (an answer may still come late)."""
        return self.rtt is None and (self.failed or now - self.sent >= self.timeout)

    def lost(self, now: float) -> bool:
        return self.rtt is None and (self.failed or now - self.sent >= self.hard_timeout)


def hard_timeout(timeout: float) -> float:
    return max(3.0, 4.0 * timeout)


@dataclass(frozen=True, slots=True)
class Stats:
    """What telemetry reports for one target; RTTs in milliseconds, None when nothing answered."""

    sent: int
    lost: int
    loss_pct: float | None
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    jitter_ms: float | None


class Window:
    """Samples of one target younger than `span` seconds (plus any still pending)."""

    def __init__(self, span: float) -> None:
        self.span = span
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)

    def prune(self, now: float) -> None:
        while self._samples and now - self._samples[0].sent > self.span:
            self._samples.popleft()

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def stats(self, now: float, since: float = float("-inf")) -> Stats:
        """Loss counts probes failed or unanswered after their hard timeout; pending ones wait."""
        done = [s for s in self._samples if s.sent >= since and (s.answered or s.lost(now))]
        rtts = [s.rtt * 1000.0 for s in done if s.rtt is not None]
        lost = len(done) - len(rtts)
        jitter = None
        if len(rtts) >= 2:
            jitter = sum(abs(b - a) for a, b in zip(rtts, rtts[1:])) / (len(rtts) - 1)
        return Stats(
            sent=len(done),
            lost=lost,
            loss_pct=100.0 * lost / len(done) if done else None,
            rtt_min_ms=min(rtts) if rtts else None,
            rtt_avg_ms=sum(rtts) / len(rtts) if rtts else None,
            rtt_max_ms=max(rtts) if rtts else None,
            jitter_ms=jitter,
        )
