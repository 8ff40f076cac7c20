"""The retained health document goes out when something an operator would act on changes, not every time
the spool depth flickers as readings pass through (that was most of a box's uplink bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.health_digest import depth_band, digest
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


def test_flowing_readings_do_not_republish_health_but_a_driver_crash_does(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"))
    rec = Recorder(broker.port, topics=(f"{BASE}/health", f"{BASE}/telemetry/#")).start()
    acked = tmp_path / "acked"
    agent = AgentProcess(cfg, tmp_path / "agent.log", emitter={
        "rate_hz": 20, "count": 0, "acked_file": str(acked), "crash_after": 160}).start()
    try:
        wait_until(lambda: len(rec.on("/telemetry/emitter")) >= 20, 30, what="readings flowing")
        before = len(rec.on(f"{BASE}/health"))
        delivered = len(rec.on("/telemetry/emitter"))
        wait_until(lambda: len(rec.on("/telemetry/emitter")) >= delivered + 80, 30, what="4 s more readings")
        assert len(rec.on(f"{BASE}/health")) - before <= 1  # at 20 readings/s it was about one a second
        # the driver crashes after 160 readings: that is news, and goes out at once
        crashed = wait_until(lambda: [m for m in rec.on(f"{BASE}/health")
                                      if m.json()["drivers"]["emitter"]["state"] == "failed"], 30, what="crash")
        assert crashed
    finally:
        agent.stop()
        rec.stop()


def test_the_digest_ignores_flow_and_sees_faults() -> None:
    doc = {"drivers": {"a": {"state": "ok", "detail": "", "restarts": 0, "counters": {"readings": 1}}},
           "spool": {"spool_state": "ok", "spool_depth": 0, "spool_dropped": 0},
           "uplink": {"state": "connected", "published": 10, "rejected": 0}}
    flow = {**doc, "spool": {**doc["spool"], "spool_depth": 1}, "uplink": {**doc["uplink"], "published": 11},
            "drivers": {"a": {**doc["drivers"]["a"], "counters": {"readings": 2}}}}
    assert digest(flow) == digest(doc)
    assert digest({**doc, "spool": {**doc["spool"], "spool_dropped": 1}}) != digest(doc)
    assert digest({**doc, "uplink": {**doc["uplink"], "rejected": 1}}) != digest(doc)
    assert digest({**doc, "spool": {**doc["spool"], "spool_depth": 5000}}) != digest(doc)
    assert [depth_band(d) for d in (0, 1, 99, 100, 999, 1000, None)] == [0, 0, 0, 3, 3, 4, 0]


def test_a_budget_verdict_on_the_same_link_reaches_the_drivers_and_health(tmp_path: Path) -> None:
    """The network driver says the metered link's budget now holds bulk: same link, new verdict."""
    import asyncio

    from agent.config import load
    from agent.supervisor import Supervisor

    async def main() -> None:
        check(Supervisor(load(write_config(tmp_path / "agent.yaml", 1, tmp_path / "data", None))))

    asyncio.run(main())


def check(sup: Any) -> None:
    from agent.driver import LinkState

    sup.set_link(LinkState("lte", True, 100.0, budget_pct=41.0))
    before = digest(sup.health_payload())
    sup.set_link(LinkState("lte", True, 200.0, budget_pct=43.5))  # creeping up: shown, not news
    assert sup.link.budget_pct == 43.5 and sup.link.since == 100.0
    assert digest(sup.health_payload()) == before
    sup.set_link(LinkState("lte", True, 300.0, defer_bulk=True, slow_telemetry=True, budget_pct=91.0))
    assert sup.link.defer_bulk and sup.link.slow_telemetry
    link = sup.health_payload()["link"]
    assert (link["defer_bulk"], link["slow_telemetry"], link["budget_pct"]) == (True, True, 91.0)
    assert digest(sup.health_payload()) != before
