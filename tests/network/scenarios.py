"""Dual-WAN scenarios on real namespaces, shared by the tests and `scripts/bench/failover`.

Each builds its own topology, runs the real driver inside the router namespace, breaks wan1 with
nftables, and returns what it measured; times are monotonic seconds from the test process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tests.network.netlab import TARGETS, DualWan, link_config
from tests.network.nsdriver import NsDriver
from tests.support.wait import wait_until

HOOK_SCRIPT = ("import os, sys; open(sys.argv[1], 'a').write(' '.join(os.environ[k] for k in "
               "('COMMUNE_EVENT', 'COMMUNE_FROM', 'COMMUNE_TO')) + chr(10))")


def _config(failover: dict[str, Any] | None = None, thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    extra = {"thresholds": thresholds} if thresholds else {}
    return {"links": [link_config(1, 1, **extra), link_config(2, 2, **extra)],
            "failover": failover or {}, "report_interval_s": 2}


def _reach(deadline: float, what: str) -> None:
    """Let scenario time pass until a monotonic deadline (a hold time, a failback window)."""
    wait_until(lambda: time.monotonic() > deadline, timeout=max(0.0, deadline - time.monotonic()) + 5, what=what)


def _both_up(drv: NsDriver, hold_s: float) -> float:
    """Wait until both links are up and wan1 carries traffic, then let min_hold_s pass."""
    for name in ("wan1", "wan2"):
        drv.wait_event("link_up", 30, pred=lambda x, n=name: x["data"]["link"] == n)
    last = max(x["mono"] for x in drv.events("link_up"))
    wait_until(lambda: time.monotonic() > last + hold_s, timeout=hold_s + 5, what="hold time")
    return time.monotonic()


def total_loss_then_recovery(workdir: Path, tag: str, failback_after_s: float = 8.0) -> dict[str, Any]:
    """Blackhole wan1 → failover to wan2; heal → failback only after failback_after_s of health."""
    lab = DualWan(tag)
    drv = None
    try:
        hook_log = workdir / "hook.log"
        hook = {"argv": [sys.executable, "-c", HOOK_SCRIPT, str(hook_log)], "events": ["failover"]}
        drv = NsDriver(lab.router, _config({"failback_after_s": failback_after_s, "hooks": [hook]}), workdir)
        _both_up(drv, 5.5)
        assert lab.default_dev() == "wan1", "wan1 must carry the default route at start"
        t_block = time.monotonic()
        lab.block(1)
        failover = drv.wait_event("failover", 20, after=t_block)
        dev_after_failover = lab.default_dev()
        ping_ok = lab.exec(lab.router, "ping", "-n", "-c", "1", "-W", "2", TARGETS[0], check=False).returncode == 0
        wait_until(lambda: time.monotonic() > failover["mono"] + 5.5, timeout=10, what="hold before healing")
        t_heal = time.monotonic()
        lab.heal(1)
        link_up = drv.wait_event("link_up", 40, after=t_heal, pred=lambda x: x["data"]["link"] == "wan1")
        failback = drv.wait_event("failback", failback_after_s + 30, after=t_heal)
        return {
            "detect_switch_s": failover["mono"] - t_block,
            "failover": failover["data"],
            "dev_after_failover": dev_after_failover,
            "ping_after_failover": ping_ok,
            "link_up_after_heal_s": link_up["mono"] - t_heal,
            "failback_after_up_s": failback["mono"] - link_up["mono"],
            "failback_s": failback["mono"] - t_heal,
            "dev_after_failback": lab.default_dev(),
            "links_seen": [x["name"] for x in drv.records() if x["t"] == "link"],
            "hook_log": hook_log.read_text() if hook_log.exists() else "",
        }
    finally:
        if drv is not None:
            drv.stop()
        lab.close()


def no_failover_under(workdir: Path, tag: str, duration_s: float, loss_pct: int = 0,
                      dead_target: str | None = None) -> dict[str, Any]:
    """Random loss on wan1 and/or one dead target, with default thresholds: count false failovers."""
    lab = DualWan(tag)
    drv = None
    try:
        if dead_target:
            lab.kill_target(dead_target)
        drv = NsDriver(lab.router, _config(), workdir)
        t0 = _both_up(drv, 5.5)
        if loss_pct:
            lab.block(1, loss_pct)
        wait_until(lambda: time.monotonic() > t0 + duration_s, timeout=duration_s + 10, what="scenario duration")
        losses = [x["value"] for x in drv.records() if x["t"] == "reading" and x["name"] == "probe_loss_pct"
                  and x["tags"]["link"] == "wan1" and x["mono"] > t0 + 30]
        return {
            "failovers": len(drv.events("failover", after=t0)),
            "wan1_down": len([x for x in drv.events("link_down", after=t0) if x["data"]["link"] == "wan1"]),
            "dev": lab.default_dev(),
            "wan1_loss_pct": losses,
            "probe_down": [x["data"] for x in drv.events("probe_down")],
        }
    finally:
        if drv is not None:
            drv.stop()
        lab.close()


def flapping(workdir: Path, tag: str, cycles: int = 4, max_switches: int = 2) -> dict[str, Any]:
    """wan1 dies and recovers repeatedly; failbacks must stop once the per-hour cap is reached."""
    lab = DualWan(tag)
    drv = None
    thresholds = {"min_hold_s": 1, "up_after_s": 2}
    try:
        drv = NsDriver(lab.router, _config({"failback_after_s": 1, "max_switches_per_hour": max_switches},
                                           thresholds), workdir)
        _both_up(drv, 1.5)
        for _ in range(cycles):
            t = time.monotonic()
            lab.block(1)
            drv.wait_event("link_down", 20, after=t, pred=lambda x: x["data"]["link"] == "wan1")
            _reach(time.monotonic() + 1.5, "hold")
            t = time.monotonic()
            lab.heal(1)
            up = drv.wait_event("link_up", 20, after=t, pred=lambda x: x["data"]["link"] == "wan1")
            # failback_after_s is 1 s: give the policy ample time to fail back (or to be damped)
            _reach(up["mono"] + 4, "failback window")
        state = drv.records()
        return {
            "failovers": len([x for x in state if x["t"] == "event" and x["kind"] == "failover"]),
            "failbacks": len([x for x in state if x["t"] == "event" and x["kind"] == "failback"]),
            "wan1_downs": len([x for x in state if x["t"] == "event" and x["kind"] == "link_down"
                               and x["data"]["link"] == "wan1"]),
            "dev": lab.default_dev(),
            "state_file": (drv.data_dir / "links.json").read_text(),
        }
    finally:
        if drv is not None:
            drv.stop()
        lab.close()
