"""What is on air now, per zone, for the families that show it (signboards): the players report each airing as
they take it and when it ends, listeners hear of it at once on the loop, in the same process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from agent.logs import KvLogger


@dataclass(frozen=True)
class OnAir:
    """One bulletin being aired on one zone; `starts` is its wall-clock start (it may still lie a moment ahead)."""

    zone: str
    bulletin_id: str
    title: str
    text: str | None
    priority: str
    starts: float


Listener = Callable[[list[OnAir]], None]
_now: dict[str, OnAir] = {}
_listeners: list[Listener] = []
_log = KvLogger("broadcast.onair")


def now() -> list[OnAir]:
    """Every zone's airing, oldest start first."""
    return sorted(_now.values(), key=lambda a: a.starts)


def listen(listener: Listener) -> Callable[[], None]:
    """Call `listener(now())` on every change (on the loop); returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def began(airing: OnAir) -> None:
    _now[airing.zone] = airing
    _tell()


def ended(zone: str) -> None:
    if _now.pop(zone, None) is not None:
        _tell()


def _tell() -> None:
    current = now()
    for listener in list(_listeners):
        try:
            listener(current)
        except Exception as exc:  # a watcher's bug must not stop an airing
            _log.exception("onair_listener_failed", exc, at=round(time.time(), 3))
