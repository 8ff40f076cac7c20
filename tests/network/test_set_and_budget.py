"""The balance-set decisions, a sparse judge's recovery, the data budget's periods and thresholds, the config
checks and the `links` table — pure logic, virtual time."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from drivers.network.budget import MB, BudgetMeter, cycle_start
from drivers.network.cli import render
from drivers.network.config import DataBudget, NetworkConfig, Thresholds
from drivers.network.failover import FailoverPolicy, LinkView
from drivers.network.linkjudge import LinkJudge

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def view(name: str, state: str, since: float = 0.0, priority: int = 1, weight: int = 1, order: int = 0,
         role: str = "balance", metered: bool = False) -> LinkView:
    return LinkView(name, priority, weight, order, state, since, "r", role, metered)  # type: ignore[arg-type]


def test_equal_priorities_form_a_set_and_a_member_rejoins_after_its_hold() -> None:
    p = FailoverPolicy(failback_after_s=30, max_switches_per_hour=6)
    fibre = view("fibre", "up", weight=3)
    lte = view("lte", "up", order=1, metered=True)
    d = p.decide([fibre, lte], 0)
    assert d is not None and d.kind == "select" and d.members == ("fibre", "lte") and d.to == "fibre"
    p.switched(d, 0)
    d = p.decide([fibre, view("lte", "down", 10, order=1, metered=True)], 10)
    assert d is not None and (d.kind, d.members, d.to) == ("leave", ("fibre",), "fibre")
    p.switched(d, 10)
    back = view("lte", "up", 20, order=1, metered=True)
    assert p.decide([fibre, back], 49) is None  # healthy for 29 s of the 30 s hold
    d = p.decide([fibre, back], 50)
    assert d is not None and (d.kind, d.members) == ("join", ("fibre", "lte"))


def test_primary_is_the_unmetered_member_and_its_loss_is_a_failover() -> None:
    p = FailoverPolicy(30, 6)
    lte = view("lte", "up", weight=5, metered=True)  # ranks first by weight, but is metered
    d = p.decide([lte, view("fibre", "up", order=1)], 0)
    assert d is not None and d.to == "fibre" and d.members == ("lte", "fibre")
    p.switched(d, 0)
    d = p.decide([lte, view("fibre", "down", 5, order=1)], 5)
    assert d is not None and (d.kind, d.previous, d.to, d.members) == ("failover", "fibre", "lte", ("lte",))


def test_standby_only_when_no_balance_link_is_up_and_budget_leave_set_drops_a_member() -> None:
    p = FailoverPolicy(0, 6)
    fibre, lte = view("fibre", "up"), view("lte", "up", order=1, role="standby", metered=True)
    d = p.decide([fibre, lte], 0)
    assert d is not None and d.members == ("fibre",)
    p.switched(d, 0)
    d = p.decide([view("fibre", "down", 1), lte], 1)
    assert d is not None and (d.kind, d.members) == ("failover", ("lte",))
    p.switched(d, 1)
    d = p.decide([view("fibre", "up", 2), lte], 2)
    assert d is not None and (d.kind, d.members) == ("failback", ("fibre",))
    p.switched(d, 2)
    # a balance member whose budget says leave_set is treated as a standby: it leaves without a hold
    p2 = FailoverPolicy(30, 6)
    both = [view("fibre", "up"), view("lte", "up", order=1, metered=True)]
    p2.switched(p2.decide(both, 0), 0)  # type: ignore[arg-type]
    d = p2.decide([view("fibre", "up"), view("lte", "up", order=1, metered=True, role="standby")], 100)
    assert d is not None and (d.kind, d.members) == ("leave", ("fibre",))


def test_a_sparse_standby_still_comes_up_from_its_sparse_answers() -> None:
    judge = LinkJudge("lte", {t: (0.5, 0.75) for t in "abc"}, Thresholds(), 0.0, sparse_s=20.0)
    judge.state = "down"
    judge.set_sparse(True)
    t = 0.0
    while t < 80:
        for target in "abc":
            judge.sent(target, t).rtt = 0.03
        judge.evaluate(t)
        t += 20.0
    assert judge.state == "up", judge.why.text
    judge.set_sparse(False)
    assert judge.up_span == Thresholds().up_after_s


def test_budget_counts_the_interface_by_day_and_billing_cycle_and_fires_once() -> None:
    cfg = DataBudget(daily_mb=10, monthly_mb=100, billing_day=15, thresholds=[
        {"at_pct": 50, "period": "monthly", "actions": ["notify"]},
        {"at_pct": 100, "period": "daily", "actions": ["notify", "defer_bulk"]}])
    m = BudgetMeter("lte", cfg, TZ)
    day1 = time.mktime((2026, 3, 14, 12, 0, 0, 0, 0, -1))
    assert m.sample(1_000, day1, "boot") == []  # the first sample is the baseline
    assert m.sample(1_000 + 9 * MB, day1 + 60, "boot") == []
    crossed = m.sample(1_000 + 11 * MB, day1 + 120, "boot")
    assert [(c.period, c.threshold.at_pct) for c in crossed] == [("daily", 100)]
    assert m.actions() == {"notify", "defer_bulk"}
    assert m.sample(1_000 + 12 * MB, day1 + 180, "boot") == []  # already announced this day
    m2 = BudgetMeter("lte", cfg, TZ)
    m2.restore(m.to_json())  # a restart keeps the totals
    assert m2.day_bytes == m.day_bytes == 12 * MB
    # the next day the daily budget is fresh; the counter restarted (a new ppp interface): counted from 0
    crossed = m2.sample(5 * MB, day1 + 86400, "boot")
    assert m2.day_bytes == 5 * MB and m2.actions() == set() and crossed == []
    # the 15th starts a new billing month
    assert cycle_start(__import__("datetime").date(2026, 3, 14), 15).isoformat() == "2026-02-15"
    assert m2.cycle == "2026-03-15" and m2.cycle_bytes == 5 * MB
    assert m2.doc()["daily"]["pct"] == 50.0


def test_config_checks_policies_and_budgets() -> None:
    link = {"interface": "eth1", "source": "10.0.0.2", "targets": [{"address": "1.1.1.1"}, {"address": "8.8.8.8"}]}
    with pytest.raises(ValidationError, match="no link named 'lte'"):
        NetworkConfig.model_validate({"links": [dict(link, name="fibre")],
                                      "policies": [{"name": "p", "link": "lte", "destination": "10.0.0.0/8"}]})
    with pytest.raises(ValidationError, match="ports need protocol"):
        NetworkConfig.model_validate({"links": [dict(link, name="fibre")],
                                      "policies": [{"name": "p", "link": "fibre", "destination": "10.0.0.0/8",
                                                    "ports": "443"}]})
    with pytest.raises(ValidationError, match="metered"):
        NetworkConfig.model_validate({"links": [dict(link, name="fibre", budget={"monthly_mb": 1000})]})
    with pytest.raises(ValidationError, match="daily threshold needs daily_mb"):
        DataBudget(monthly_mb=1, thresholds=[{"at_pct": 5, "period": "daily", "actions": ["notify"]}])


def test_links_table_shows_the_set_shares_budget_and_policies() -> None:
    state = {"updated": 100.0, "current": "fibre", "mode": "managed", "members": ["fibre", "lte"],
             "links": [{"name": "fibre", "state": "up", "interface": "eth1", "priority": 1, "role": "balance",
                        "in_set": True, "share_pct": 75.0, "in_use": True, "probes": "full", "targets": []},
                       {"name": "lte", "state": "up", "interface": "wwan0", "priority": 1, "role": "balance",
                        "metered": True, "in_set": True, "share_pct": 25.0, "probes": "full", "targets": [],
                        "budget": {"used_pct": 82.0, "actions": ["defer_bulk"], "billing_day": 5,
                                   "cycle_start": "2026-03-05",
                                   "monthly": {"used_mb": 820.0, "budget_mb": 1000.0, "pct": 82.0}}}],
             "policies": [{"name": "gov", "link": "fibre", "action": "pin", "match": "to 10.0.0.0/8",
                           "fallback": False, "state": "pinned"}]}
    out = render(state, 100.0)
    assert "balance set: fibre 75%, lte 25%" in out
    assert "lte monthly 820.0/1000 MB (82%) since 2026-03-05 → defer_bulk" in out
    assert "gov  pin fibre  to 10.0.0.0/8  pinned" in out
