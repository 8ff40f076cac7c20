"""A record the full spool drops is never silent: emit says False, the COC sees a seq gap and a
spool_dropped event (real agent process, real spool, real mosquitto)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


class FillerProcess(AgentProcess):
    """The agent with tests/core/filler.py as its only extra driver."""

    def __init__(self, config: Path, log: Path, settings: dict[str, Any]) -> None:
        super().__init__(config, log)
        self.settings = settings

    def start(self) -> FillerProcess:
        argv = [sys.executable, "-m", "tests.core.filler", str(self.config), json.dumps(self.settings)]
        self.proc = subprocess.Popen(argv, cwd=self.env["PYTHONPATH"], env=self.env, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        return self


def numbers(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_a_full_spool_tells_the_driver_and_the_coc_about_every_drop(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "mosq").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/#",), persistent=True).start()
    broker.stop()  # the recorder's session waits in the broker; the agent starts offline and its spool fills
    acked, dropped = tmp_path / "acked", tmp_path / "dropped"
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"),
                       spool={"max_bytes": "1MiB"})
    # ~800 KB of events into a 1 MiB spool (768 KiB for rows), then readings bigger than the room an event
    # leaves: a reading ranks lower than the events and cannot evict them, so the full spool drops it
    agent = FillerProcess(cfg, tmp_path / "agent.log",
                          {"events": 400, "event_bytes": 2000, "readings": 300, "reading_bytes": 6000,
                           "rate_hz": 100, "acked_file": str(acked), "dropped_file": str(dropped)})
    agent.start()
    try:
        wait_until(lambda: len(numbers(dropped)) >= 20, 15, what="emit answering False for dropped readings")
        assert numbers(acked) == [], "no reading fits while the broker is away"
        broker.start()

        def drained() -> dict | None:
            for m in reversed(rec.on(f"{BASE}/health")):
                doc = m.json()
                if doc["spool"]["spool_depth"] == 0 and doc["drivers"]["filler"]["detail"] == "done":
                    return doc
            return None

        health = wait_until(drained, 30, what="the backlog delivered")
        lost = numbers(dropped)
        assert len(numbers(acked)) > 20 and len(lost) + len(numbers(acked)) == 300, (len(lost), len(numbers(acked)))
        assert health["drivers"]["filler"]["counters"]["emit_dropped"] == len(lost), (health, len(lost))
        total = health["spool"]["spool_dropped"]
        assert health["spool"]["spool_dropped_by_priority"]["telemetry"] >= len(lost)

        got = {r["value"] for m in rec.on(f"{BASE}/telemetry/filler") for r in m.json()["readings"]}
        assert got == set(numbers(acked)), "every reading whose emit said True arrives, no dropped one does"
        boot = health["boot_id"]
        seqs = {m.json()["seq"] for m in rec.snapshot()
                if ("/telemetry/" in m.topic or "/event/" in m.topic) and m.json().get("boot_id") == boot}
        assert max(seqs) - len(seqs) == total, ("each drop leaves one seq gap", max(seqs), len(seqs), total)

        # an agent event the spool cannot take at once (rows in flight) goes live as well: the same id twice
        notices = list({m.json()["id"]: m.json()["data"] for m in rec.on(f"{BASE}/event/spool_dropped")}.values())
        assert notices and notices[0]["dropped"] > 0
        assert sum(n["dropped"] for n in notices) == notices[-1]["dropped_total"] <= total, (notices, total)
    finally:
        agent.stop()
        rec.stop()
        broker.stop()
