"""Which link should carry the default route: failover, failback after a hold, flap damping.

Pure decision logic (the caller applies routes and emits events), so it is testable without netlink.
- The current link went down → move to the best healthy link at once ("failover", never damped: a dead
  link carries nothing, so staying on it protects nobody).
- The current link is healthy but a better one (lower priority, then higher weight) has been up for
  `failback_after_s` → move back ("failback"). Voluntary moves are capped at `max_switches_per_hour`
  in any sliding hour; past the cap the agent stays where it is. With the cap at N a flapping link
  causes at most N failbacks and N+1 switches in an hour.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from drivers.network.linkjudge import State

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class LinkView:
    """What the policy needs to know about one link."""

    name: str
    priority: int
    weight: int
    order: int  # position in the config: the last tie-breaker
    state: State
    since: float  # monotonic time of its last state change
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Literal["select", "failover", "failback"]
    to: str
    previous: str | None
    reason: str


def rank(view: LinkView) -> tuple[int, int, int]:
    return (view.priority, -view.weight, view.order)


class FailoverPolicy:
    """Holds the current link and the switch history; `decide` says where to go, `switched` records it."""

    def __init__(self, failback_after_s: float, max_switches_per_hour: int) -> None:
        self.failback_after = failback_after_s
        self.max_switches = max_switches_per_hour
        self.current: str | None = None
        self.voluntary: deque[float] = deque()
        self.total: deque[float] = deque()
        self.damped = False  # True while a failback is held back by the cap (so it is logged once)

    def switches_last_hour(self, now: float) -> int:
        while self.total and now - self.total[0] > HOUR:
            self.total.popleft()
        return len(self.total)

    def decide(self, views: list[LinkView], now: float) -> Decision | None:
        by_name = {v.name: v for v in views}
        healthy = sorted((v for v in views if v.state == "up"), key=rank)
        if not healthy:
            return None
        best = healthy[0]
        current = by_name.get(self.current) if self.current else None
        if current is None:
            return Decision("select", best.name, self.current, best.reason)
        if current.state != "up":
            if current.state == "unknown":
                return None  # the current link is still being judged (start-up): do not move it yet
            return Decision("failover", best.name, current.name, current.reason)
        if best.name == current.name or rank(best) >= rank(current):
            self.damped = False
            return None
        if now - best.since < self.failback_after:
            return None
        while self.voluntary and now - self.voluntary[0] > HOUR:
            self.voluntary.popleft()
        if len(self.voluntary) >= self.max_switches:
            self.damped = True
            return None
        self.damped = False
        return Decision("failback", best.name, current.name,
                        f"{best.name} healthy for {now - best.since:.0f}s (failback_after "
                        f"{self.failback_after:.0f}s): {best.reason}")

    def switched(self, decision: Decision, now: float) -> None:
        self.current = decision.to
        self.total.append(now)
        if decision.kind == "failback":
            self.voluntary.append(now)
