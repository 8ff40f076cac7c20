"""The retained health document goes out when something an operator would act on changes, not every time
the spool depth flickers as readings pass through (that was most of a box's uplink bytes)."""

from __future__ import annotations

from pathlib import Path

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
