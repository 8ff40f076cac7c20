"""`rm -rf` of the data dir under a running agent: the spool notices, says so, recreates its file and keeps
what was not delivered (real agent process, real mosquitto)."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


def acl(broker: Broker, telemetry: bool) -> None:
    """The agent may publish everything but, unless `telemetry`, its telemetry: that stays in the spool."""
    lines = ["user coc", "topic readwrite #", "", "user agent", f"topic readwrite {BASE}/status",
             f"topic readwrite {BASE}/health", f"topic readwrite {BASE}/event/#", f"topic readwrite {BASE}/cmd/#"]
    if telemetry:
        lines.append(f"topic readwrite {BASE}/#")
    (broker.dir / "acl").write_text("\n".join(lines) + "\n")


def acked(path: Path) -> set[int]:
    return {int(x) for x in path.read_text().split() if x.isdigit()} if path.exists() else set()


def delivered(rec: Recorder) -> set[int]:
    return {r["value"] for m in rec.on(f"{BASE}/telemetry/emitter") for r in m.json()["readings"]}


def test_a_data_dir_removed_under_the_agent_is_noticed_recreated_and_loses_nothing_accepted(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "mosq")
    acl(broker, telemetry=False)
    broker.start()
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    acked_file, data = tmp_path / "acked", tmp_path / "data"
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"))
    emitter = {"rate_hz": 100, "count": 0, "acked_file": str(acked_file)}
    agent = AgentProcess(cfg, tmp_path / "agent.log", emitter=emitter).start()
    try:
        wait_until(lambda: len(acked(acked_file)) >= 100, 20, what="readings kept in the spool")
        agent.signal(signal.SIGSTOP)  # so the file in its way is there before the agent looks again
        shutil.rmtree(data)
        data.write_text("")  # the dir cannot be made again for now: the degraded state lasts
        agent.signal(signal.SIGCONT)

        def health(pred: object) -> dict | None:
            for m in reversed(rec.on(f"{BASE}/health")):
                doc = m.json()
                if pred(doc["spool"]):  # type: ignore[operator]
                    return doc
            return None

        doc = wait_until(lambda: health(lambda s: s["spool_state"] == "degraded"), 10, what="degraded in health")
        assert doc["spool"]["spool_files_lost"] == 1
        assert str(data) in doc["spool"]["spool_degraded_reason"]  # why it cannot start a fresh file there
        data.unlink()
        wait_until(lambda: health(lambda s: s["spool_state"] == "ok" and s["spool_files_lost"] == 1), 20,
                   what="the spool back in a fresh file")
        resumed = wait_until(lambda: rec.on(f"{BASE}/event/spool_resumed"), 10, what="spool_resumed")[0].json()
        assert resumed["data"]["carried_over"] >= 100
        degraded = [m.json()["data"] for m in rec.on(f"{BASE}/event/spool_degraded")]
        assert any("deleted while open" in d["reason"] for d in degraded), degraded
        n = len(acked(acked_file))
        wait_until(lambda: len(acked(acked_file)) >= n + 100, 20, what="readings accepted after the recovery")
        agent.kill9()
        assert (data / "spool.db").exists()
        want = acked(acked_file)
        acl(broker, telemetry=True)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)
        agent = AgentProcess(cfg, tmp_path / "agent.log", emitter={**emitter, "count": 1}).start()
        wait_until(lambda: want <= delivered(rec), 30, what="every accepted reading delivered after the restart")
        assert json.loads((data / "status.json").read_text())["boot_id"]
    finally:
        agent.stop()
        rec.stop()
        broker.stop()
