"""What a technician runs on site: status, doctor; and a corrupt spool reported to the COC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.agentproc import ROOT, AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "--config", str(cfg), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_doctor_checks_the_broker_login(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"))
    (tmp_path / "data").mkdir()
    res = cli(cfg, "doctor")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok   coc_login" in res.stdout and "ok   spool" in res.stdout
    bad = tmp_path / "bad.secret"
    bad.write_text("nope\n")
    cfg = write_config(tmp_path / "bad.yaml", broker.port, tmp_path / "data", bad)
    res = cli(cfg, "doctor")
    assert res.returncode == 1 and "FAIL coc_login" in res.stdout and "nope" not in res.stdout
    broker.stop()
    res = cli(cfg, "doctor")
    assert res.returncode == 1 and "FAIL coc_tcp" in res.stdout


def test_status_of_a_running_agent_and_corrupt_spool_event(tmp_path: Path, broker: Broker,
                                                           recorder: Recorder) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "spool.db").write_bytes(b"this is not a database" * 500)
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"))
    res = cli(cfg, "status")
    assert res.returncode == 3 and "is the agent running" in res.stderr
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        ev = wait_until(lambda: recorder.on(f"{BASE}/event/spool_corrupt"), 20, what="spool_corrupt event")[0].json()
        assert ev["severity"] == "warning" and "corrupt" in ev["data"]["moved_to"]
        assert Path(ev["data"]["moved_to"]).exists()

        def connected() -> str | None:
            out = cli(cfg, "status").stdout
            return out if "uplink: connected" in out else None

        out = wait_until(connected, 20, interval=0.5, what="status shows connected")
        assert "driver host: ok" in out and "spool: depth=" in out
    finally:
        agent.stop()
    res = cli(cfg, "status")
    assert res.returncode == 3 and "stopped" in res.stdout
