"""Balancing scenarios on real namespaces with real TCP flows, shared by tests/network/test_balance.py and
`scripts/bench/links`. Each builds its own lab, runs the real driver in the router namespace and returns what
it measured; times are monotonic seconds of the test process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.network.balancelab import AVOID_PORT, GOV, LAN_HOST2, BalancedLab, Flows, balanced_config, shares
from tests.network.nsdriver import NsDriver
from tests.support.wait import wait_until


def _set_is(drv: NsDriver, members: list[str], timeout: float = 30) -> float:
    """Wait until the driver's state file shows the balance set `members`; when that was seen."""
    path = drv.data_dir / "links.json"

    def now_in() -> float | None:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return time.monotonic() if doc.get("members") == members else None
    return wait_until(now_in, timeout=timeout, interval=0.05, what=f"balance set {members}")


def balanced(workdir: Path, tag: str, share_s: float = 6.0, flows: int = 32, sticky: bool = True) -> dict[str, Any]:
    """Shares by weight, the three policies, a member leaving and rejoining under long flows, then a failover of
    the primary under balanced long flows; wan2 has a small daily budget that the traffic crosses."""
    lab = BalancedLab(tag)
    drv = None
    try:
        cfg = balanced_config(sticky=sticky)
        cfg["links"][1]["budget"] = {"daily_mb": 1, "thresholds": [{"at_pct": 100,
                                                                    "actions": ["notify", "defer_bulk"]}]}
        drv = NsDriver(lab.router, cfg, workdir)
        _set_is(drv, ["wan1", "wan2"])
        out: dict[str, Any] = {"routes": lab.ip(lab.router, "route", "show", "default"),
                               "rules": lab.ip(lab.router, "rule")}
        # 1. shares and policies, all at once
        runs = {"all": Flows(lab, flows=flows, duration=share_s, flow_s=0.25),
                "gov": Flows(lab, dst=GOV, flows=8, duration=share_s, flow_s=0.25),
                "recorder": Flows(lab, src=LAN_HOST2, flows=8, duration=share_s, flow_s=0.25),
                "bulk_port": Flows(lab, port=AVOID_PORT, flows=8, duration=share_s, flow_s=0.25)}
        out["flows"] = {k: f.result() for k, f in runs.items()}
        out["shares"] = shares(out["flows"]["all"])
        # 2. wan2 leaves; long flows start on wan1 alone; wan2 rejoins under them
        t = time.monotonic()
        lab.block(2)
        _set_is(drv, ["wan1"])
        long_flows = Flows(lab, flows=16, duration=12.0)
        wait_until(lambda: len(long_flows.records) > 0 or time.monotonic() > t + 1, timeout=5, what="flows begin")
        time.sleep(0.5)  # the flows' first exchanges happen while wan2 is out
        t_heal = time.monotonic()
        lab.heal(2)
        joined = _set_is(drv, ["wan1", "wan2"])
        out["rejoin_after_heal_s"] = joined - t_heal
        out["flows_across_rejoin"] = long_flows.result()
        out["rejoin_mono"] = joined
        # 3. balanced long flows; the primary (wan1) dies under them
        balanced_flows = Flows(lab, flows=flows, duration=8.0)
        gov_flows = Flows(lab, dst=GOV, flows=4, duration=8.0, flow_s=0.5)
        time.sleep(2.0)  # the flows are established on both links before the failure
        t_block = time.monotonic()
        lab.block(1)
        failover = drv.wait_event("failover", 20, after=t_block)
        out["failover_s"] = failover["mono"] - t_block
        out["failover"] = failover["data"]
        out["dev_after_failover"] = lab.default_dev()
        out["flows_across_failover"] = balanced_flows.result()
        out["gov_across_failover"] = gov_flows.result()
        out["budget_events"] = [x["data"] for x in drv.events("data_budget")]
        out["link_after_failover"] = drv.wait_for(
            lambda x: x["t"] == "link" and x["name"] == "wan2" and x["defer_bulk"], 15,
            "the agent's link is wan2 with bulk held by its budget", after=t_block)
        out["state"] = (drv.data_dir / "links.json").read_text()
        return out
    finally:
        if drv is not None:
            drv.stop()
        lab.close()


def standby(workdir: Path, tag: str, standby_interval_s: float = 2.0, measure_s: float = 6.0) -> dict[str, Any]:
    """wan2 as a standby: out of the set, probed sparsely (bytes on its wire), taken at once when wan1 dies."""
    lab = BalancedLab(tag)
    drv = None
    try:
        cfg = balanced_config()
        cfg["policies"] = []
        cfg["links"][1].update(role="standby", standby_interval_s=standby_interval_s)
        drv = NsDriver(lab.router, cfg, workdir)
        drv.wait_for(lambda x: x["t"] == "event" and x["kind"] == "link_up" and x["data"]["link"] == "wan2", 30,
                     "wan2 up")
        sparse_line = "probes_sparse link=wan2"
        wait_until(lambda: sparse_line in drv.log_tail(), timeout=10, what="wan2 probed sparsely")
        time.sleep(standby_interval_s)  # probes sent at the full rate before the switch are answered
        b1, b2, t0 = lab.wire_bytes(1), lab.wire_bytes(2), time.monotonic()
        time.sleep(measure_s)
        elapsed = time.monotonic() - t0
        out: dict[str, Any] = {
            "wan1_bytes_per_s": (lab.wire_bytes(1) - b1) / elapsed,
            "wan2_bytes_per_s": (lab.wire_bytes(2) - b2) / elapsed,
            "routes_before": lab.ip(lab.router, "route", "show", "default"),
            "in_set_before": [x["data"] for x in drv.events("balance_changed")],
        }
        t_block = time.monotonic()
        lab.block(1)
        failover = drv.wait_event("failover", 20, after=t_block)
        out["failover_s"] = failover["mono"] - t_block
        out["failover"] = failover["data"]
        out["dev_after_failover"] = lab.default_dev()
        wait_until(lambda: "probes_full link=wan2" in drv.log_tail(), timeout=5, what="wan2 probed at full rate")
        return out
    finally:
        if drv is not None:
            drv.stop()
        lab.close()
