"""Where a zone's audio goes: the sound card, RTP multicast, multicast group paging, or HTTP push to an IP speaker."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from drivers.broadcast.audio import Audio
from drivers.broadcast.track import Track


class OutputError(Exception):
    """The zone could not play: device missing, network refused, speaker rejected us."""


@dataclass(frozen=True)
class PlayResult:
    started: float  # wall time of the first sample
    ended: float
    interrupted: bool


def multicast_socket(what: str, group: str, port: int, ttl: int, interface: str | None) -> socket.socket:
    """A UDP socket for a zone's multicast group: its TTL, looped back to this box too, out of its interface."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    except OSError as exc:
        sock.close()
        raise OutputError(f"{what} {group}:{port}: {exc.strerror or exc}") from None
    return sock


class Session(Protocol):
    """One airing on one output, opened ahead of airtime so the start is only a deadline wait."""

    def play(self, deadline: float, cancel: threading.Event) -> PlayResult: ...

    def close(self) -> None: ...


class Output(Protocol):
    def open(self, audio: Audio | Track) -> Session: ...


def wait_until(deadline: float, cancel: threading.Event) -> bool:
    """Wait for a monotonic deadline, cancellable; the last stretch is one precise sleep. False if cancelled."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining > 0.003:
            if cancel.wait(min(remaining - 0.002, 0.05)):
                return False
            continue
        if remaining > 0:
            time.sleep(remaining)
        return not cancel.is_set()
