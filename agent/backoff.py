"""Capped exponential backoff: the one retry pacing for reconnects and restarts across the agent."""

from __future__ import annotations

import random


class Backoff:
    """Delays low, 2·low, 4·low … capped at high; jitter spreads many clients so they do not retry in lockstep."""

    def __init__(self, low: float, high: float, *, factor: float = 2.0, jitter: float = 0.0) -> None:
        if low <= 0 or high < low:
            raise ValueError(f"backoff needs 0 < low <= high, got low={low} high={high}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"backoff jitter must be in [0, 1), got {jitter}")
        self.low, self.high, self.factor, self.jitter = low, high, factor, jitter
        self.current = low

    def next(self) -> float:
        """The delay to wait now; the following one grows by `factor` up to `high`."""
        delay = self.current
        self.current = min(self.high, self.current * self.factor)
        if self.jitter:
            delay *= random.uniform(1.0 - self.jitter, 1.0)
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits `low` again."""
        self.current = self.low
