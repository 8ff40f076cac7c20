"""Decoded frames to the analysis thread, one at a time, so decoding never waits on analysis.

While the analysis thread is busy (a detector answer is late, a snapshot is being encoded) the capture loop
keeps decoding every frame and simply does not convert the next one for analysis; each such frame is counted
(`analysis_skipped`), and the heartbeat reports why the rate is lowered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Handoff:
    """A one-frame mailbox between the capture loop and the analysis thread."""

    def __init__(self, analyse: Callable[[Any, float, float], None]) -> None:
        self.analyse = analyse
        self.idle = threading.Event()
        self.idle.set()
        self.cond = threading.Condition()
        self.item: tuple[Any, float, float] | None = None
        self.error: BaseException | None = None  # what ended the analysis thread; the capture loop raises it
        self.thread = threading.Thread(target=self._run, daemon=True, name="analysis")
        self.thread.start()

    def offer(self, frame: Any, mono: float, wall: float) -> None:
        """Give the analysis thread this frame; call only while `idle` is set."""
        if self.error is not None:
            raise self.error  # a crashing analysis takes the worker down, as it would in one thread
        with self.cond:
            self.idle.clear()
            self.item = (frame, mono, wall)
            self.cond.notify()

    def wait_idle(self, timeout: float) -> bool:
        """Until the frame in hand is analysed (before touching the analyzer from the capture loop)."""
        return self.idle.wait(timeout)

    def _run(self) -> None:
        while True:
            with self.cond:
                while self.item is None:
                    self.cond.wait()
                frame, mono, wall = self.item
                self.item = None
            try:
                self.analyse(frame, mono, wall)
            except BaseException as exc:
                self.error = exc
                return
            finally:
                self.idle.set()


def lowered_reason(lag_reason: str | None, slowdown: float) -> str | None:
    """Why this camera analyses or detects less than configured, from the decisions that lowered it (they hold
    for seconds, so health does not flap with every late frame); None while it runs as configured."""
    if lag_reason:
        return lag_reason
    if slowdown > 1.0:
        return f"the shared detector is busy: this camera calls it {slowdown:.1f}x less often"
    return None
