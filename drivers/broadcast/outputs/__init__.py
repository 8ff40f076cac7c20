"""Where a zone's audio goes: the sound card, RTP multicast, or HTTP push to an IP speaker."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from drivers.broadcast.audio import Audio


class OutputError(Exception):
    """The zone could not play: device missing, network refused, speaker rejected us."""


@dataclass(frozen=True)
class PlayResult:
    started: float  # wall time of the first sample
    ended: float
    interrupted: bool


class Session(Protocol):
    """One airing on one output, opened ahead of airtime so the start is only a deadline wait."""

    def play(self, deadline: float, cancel: threading.Event) -> PlayResult: ...

    def close(self) -> None: ...


class Output(Protocol):
    def open(self, audio: Audio) -> Session: ...


def wait_until(deadline: float, cancel: threading.Event) -> bool:
    """Sleep to a monotonic deadline, spinning only the last millisecond; False if cancelled first."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return not cancel.is_set()
        if remaining > 0.002:
            if cancel.wait(min(remaining - 0.0015, 0.05)):
                return False
        elif cancel.is_set():
            return False
