"""The link judge and failover policy on synthetic probe outcomes (virtual time, seeded randomness)."""

from __future__ import annotations

import random

from drivers.network.config import NetworkConfig, Thresholds
from drivers.network.failover import FailoverPolicy, LinkView
from drivers.network.linkjudge import LinkJudge

TARGETS = ("a", "b", "c")
STEP = 0.5 / 3  # three targets at 0.5 s each, staggered


def drive(judge: LinkJudge, start: float, seconds: float, lost: callable, rtt: float = 0.02) -> list:
    """Send probes round-robin on virtual time; lost(target, t) says whether a probe goes unanswered."""
    verdicts = []
    t, i = start, 0
    pending = []
    while t < start + seconds:
        target = TARGETS[i % 3]
        s = judge.sent(target, t)
        if not lost(target, t):
            pending.append((t + rtt, s))
        for due, sample in [p for p in pending if p[0] <= t]:
            sample.rtt = rtt
            pending.remove((due, sample))
        verdicts += [v for v in judge.evaluate(t) if "/" not in v.subject]
        t += STEP
        i += 1
    return verdicts


def new_judge(now: float = 0.0) -> LinkJudge:
    return LinkJudge("wan1", {t: (0.5, 0.75) for t in TARGETS}, Thresholds(), now)


def test_total_loss_is_an_outage_within_three_seconds() -> None:
    judge = new_judge()
    assert [v.state for v in drive(judge, 0, 20, lambda t, now: False)] == ["up"]
    verdicts = drive(judge, 20, 5, lambda t, now: True)
    assert [v.state for v in verdicts] == ["down"]
    assert verdicts[0].measured["silent_s"] <= 3.0


def test_thirty_percent_loss_for_ten_minutes_never_fails() -> None:
    rng = random.Random(7)
    judge = new_judge()
    drive(judge, 0, 20, lambda t, now: False)
    assert drive(judge, 20, 600, lambda t, now: rng.random() < 0.30) == []


def test_one_dead_target_never_fails_the_link() -> None:
    judge = new_judge()
    verdicts = drive(judge, 0, 120, lambda t, now: t == "c")
    assert [v.state for v in verdicts] == ["up"]
    assert judge.target_state["c"] == "down"


def test_recovery_needs_up_after_s_of_health() -> None:
    judge = new_judge()
    drive(judge, 0, 20, lambda t, now: False)
    drive(judge, 20, 10, lambda t, now: True)
    assert judge.state == "down"
    verdicts = drive(judge, 30, 30, lambda t, now: False)
    assert [v.state for v in verdicts] == ["up"]
    th = Thresholds()  # up: at most up_loss_pct lost over the last up_after_s, so ~90 % of it healthy
    assert judge.since - 30 >= th.up_after_s * (1 - th.up_loss_pct / 100) - 0.75 - STEP


def view(name: str, prio: int, state: str, since: float = 0.0) -> LinkView:
    return LinkView(name, prio, 1, prio, state, since, f"{name} {state}")  # type: ignore[arg-type]


def test_policy_fails_over_and_fails_back_after_hold_with_damping() -> None:
    p = FailoverPolicy(failback_after_s=30, max_switches_per_hour=1)
    d = p.decide([view("wan1", 1, "up"), view("wan2", 2, "up")], 1)
    assert d is not None and d.kind == "select" and d.to == "wan1"
    p.switched(d, 1)
    d = p.decide([view("wan1", 1, "down", 10), view("wan2", 2, "up")], 10)
    assert d is not None and (d.kind, d.to) == ("failover", "wan2")
    p.switched(d, 10)
    assert p.decide([view("wan1", 1, "up", 20), view("wan2", 2, "up")], 49) is None  # 29 s < 30 s
    d = p.decide([view("wan1", 1, "up", 20), view("wan2", 2, "up")], 50)
    assert d is not None and d.kind == "failback"
    p.switched(d, 50)
    d = p.decide([view("wan1", 1, "down", 60), view("wan2", 2, "up")], 60)
    assert d is not None and d.kind == "failover"  # never damped
    p.switched(d, 60)
    assert p.decide([view("wan1", 1, "up", 70), view("wan2", 2, "up")], 200) is None  # cap of 1 per hour
    assert p.damped
    d = p.decide([view("wan1", 1, "up", 70), view("wan2", 2, "up")], 50 + 3601)
    assert d is not None and d.kind == "failback"


def test_config_rejects_inverted_hysteresis_and_single_target() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="hysteresis"):
        Thresholds(up_loss_pct=60, down_loss_pct=50)
    with pytest.raises(ValidationError, match="at least 2"):
        NetworkConfig.model_validate({"links": [{"name": "w", "interface": "eth0", "source": "10.0.0.2",
                                                 "targets": [{"address": "1.1.1.1"}]}]})
