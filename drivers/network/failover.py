"""Which links carry the default route: the balance set, failover, failback/rejoin after a hold, flap damping.

Pure decision logic (the caller applies routes and emits events), so it is testable without netlink.
- The set is the `balance` links that are up and share the best (lowest) priority among them, weighted;
  with no balance link up, the best `standby` link that is up, alone. With priorities 1 and 2 this is
  plain failover; with equal priorities the links share new flows by weight.
- A member that goes down leaves the set at once; if that was the primary ("failover") or the set is
  left empty the move is never damped (a dead link carries nothing).
- A link that should be in the set joins only after `failback_after_s` of health ("join"; "failback"
  when the set moves back to a better priority). Such voluntary moves are capped at
  `max_switches_per_hour` in any sliding hour; past the cap the set stays as it is.
- The primary (the link of the agent's own traffic) is the set's best unmetered member, else its best.
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
    role: str = "balance"  # "balance" or "standby" (a budget's leave_set makes a balance link standby)
    metered: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Literal["select", "failover", "failback", "join", "leave"]
    to: str  # the primary after the change
    previous: str | None  # the primary before
    reason: str
    members: tuple[str, ...] = ()  # the set after the change, best first


def rank(view: LinkView) -> tuple[int, int, int]:
    return (view.priority, -view.weight, view.order)


def primary_of(views: list[LinkView]) -> LinkView:
    """The agent's own link among set members: unmetered first, then by rank."""
    return min(views, key=lambda v: (v.metered, rank(v)))


def target_set(healthy: list[LinkView]) -> list[LinkView]:
    """Where traffic belongs given the links that are up: best-priority balance links, else the best standby."""
    balance = [v for v in healthy if v.role == "balance"]
    if balance:
        best = min(v.priority for v in balance)
        return sorted((v for v in balance if v.priority == best), key=rank)
    return [min(healthy, key=rank)] if healthy else []


class FailoverPolicy:
    """Holds the set, its primary and the switch history; `decide` says what to change, `switched` records it."""

    def __init__(self, failback_after_s: float, max_switches_per_hour: int) -> None:
        self.failback_after = failback_after_s
        self.max_switches = max_switches_per_hour
        self.current: str | None = None
        self.members: tuple[str, ...] = ()
        self.voluntary: deque[float] = deque()
        self.total: deque[float] = deque()
        self.damped = False  # True while a voluntary change is held back by the cap (so it is logged once)

    def switches_last_hour(self, now: float) -> int:
        while self.total and now - self.total[0] > HOUR:
            self.total.popleft()
        return len(self.total)

    def adopt(self, members: list[LinkView]) -> None:
        """Start from a set the kernel already routes by (a restart moves nothing)."""
        self.members = tuple(v.name for v in sorted(members, key=rank))
        self.current = primary_of(members).name if members else None

    def decide(self, views: list[LinkView], now: float) -> Decision | None:
        by_name = {v.name: v for v in views}
        healthy = [v for v in views if v.state == "up"]
        if not healthy:
            return None
        target = target_set(healthy)
        members = [by_name[m] for m in self.members if m in by_name]
        if self.current is None or not members:
            return self._decision("select", target, healthy[0].reason, now)
        if any(v.state == "unknown" for v in members) and not any(v.state == "up" for v in members):
            return None  # the set is still being judged (start-up): do not move it yet
        kept = [v for v in members if v.state != "down"]
        gone = [v for v in members if v.state == "down"]
        if not kept:
            return self._decision("failover", target, gone[0].reason, now)
        target_names = {v.name for v in target}
        if any(v.name not in target_names for v in kept):  # a better priority is up, or a member turned standby
            ready = [v for v in target if v.name in self.members or now - v.since >= self.failback_after]
            if ready and self._allowed(now):
                if {v.name for v in ready} <= {v.name for v in kept}:
                    return self._decision("leave", ready, "no longer in the balance set", now)
                best = ready[0]
                return self._decision("failback", ready, f"{best.name} healthy for {now - best.since:.0f}s "
                                                         f"(failback_after {self.failback_after:.0f}s): {best.reason}",
                                      now)
        else:
            held = [v for v in target if v.name not in self.members and now - v.since >= self.failback_after]
            if held and self._allowed(now):
                return self._decision("join", sorted(kept + held, key=rank),
                                      f"{held[0].name} healthy for {now - held[0].since:.0f}s "
                                      f"(failback_after {self.failback_after:.0f}s): {held[0].reason}", now)
            if not held:
                self.damped = False
        if gone:
            kind = "failover" if self.current in {v.name for v in gone} else "leave"
            return self._decision(kind, sorted(kept, key=rank), gone[0].reason, now)
        return None

    def _allowed(self, now: float) -> bool:
        while self.voluntary and now - self.voluntary[0] > HOUR:
            self.voluntary.popleft()
        if len(self.voluntary) >= self.max_switches:
            self.damped = True
            return False
        self.damped = False
        return True

    def _decision(self, kind: Literal["select", "failover", "failback", "join", "leave"], members: list[LinkView],
                  reason: str, now: float) -> Decision | None:
        names = tuple(v.name for v in members)
        if not names or (names == self.members and kind != "select"):
            return None
        return Decision(kind, primary_of(members).name, self.current, reason, names)

    def switched(self, decision: Decision, now: float) -> None:
        self.current = decision.to
        self.members = decision.members or (decision.to,)
        self.total.append(now)
        if decision.kind in ("failback", "join"):
            self.voluntary.append(now)
