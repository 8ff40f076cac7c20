"""Refused logins summed per client address and window: one audit row and one COC event per address and
window, whatever the rate, so anonymous traffic costs neither disk nor metered bytes without bound."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MAX_ADDRESSES = 20  # per window; any further address is summed under "*"
MAX_NAMES = 10  # user names listed per summary; the rest are only counted
NAME_CHARS = 32
OTHER = "*"


@dataclass
class Tally:
    """What one address tried in one window."""

    first: float
    last: float
    reasons: dict[str, int] = field(default_factory=dict)
    names: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    unlisted: int = 0  # attempts under names past the first MAX_NAMES

    @property
    def attempts(self) -> int:
        return sum(self.reasons.values())

    def detail(self) -> str:
        """key=value, bounded: the names are cut, stripped of anything unprintable and listed at most MAX_NAMES."""
        parts = [f"attempts={self.attempts}"] + [f"{r}={n}" for r, n in sorted(self.reasons.items())]
        parts.append("names=" + ",".join(self.names))
        if self.unlisted:
            parts.append(f"unlisted={self.unlisted}")
        parts.append(f"seconds={self.last - self.first:.0f}")
        return " ".join(parts)


def _clean(name: str) -> str:
    return "".join(c for c in name[:NAME_CHARS] if c.isprintable() and c not in " ,=") or "-"


class RefusedLogins:
    """Collects refusals (`failed`: wrong name or password, `throttled`: refused before checking) until taken."""

    def __init__(self) -> None:
        self._tallies: dict[str, Tally] = {}

    def __bool__(self) -> bool:
        return bool(self._tallies)

    def add(self, address: str | None, name: str, reason: str) -> None:
        now = time.time()
        key = address or "?"
        if key not in self._tallies and len(self._tallies) >= MAX_ADDRESSES:
            key = OTHER
        t = self._tallies.get(key)
        if t is None:
            t = self._tallies[key] = Tally(now, now)
        t.last = now
        t.reasons[reason] = t.reasons.get(reason, 0) + 1
        clean = _clean(name)
        if clean not in t.names:
            if len(t.names) < MAX_NAMES:
                t.names[clean] = None
            else:
                t.unlisted += 1

    def take(self) -> list[tuple[str, Tally]]:
        """The window's tallies, one per address; the next window starts empty."""
        out, self._tallies = list(self._tallies.items()), {}
        return out
