"""`fleet enroll`: what it writes passes check-config, and its broker lines work on a real mosquitto: the box logs
in with its own password, publishes its birth, and the ACL refuses it another site's topics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main
from agent.fleet.config import FleetCliConfig, FleetError
from agent.fleet.mqtt import FleetMqtt
from tests.fleet.lab import PREFIX
from tests.support.agentproc import AgentProcess
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until


def _fleet_yaml(tmp: Path, broker: Broker, keys: Path) -> Path:
    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump({
        "broker": {"host": "127.0.0.1", "port": broker.port, "username": "coc",
                   "password_file": str(broker.password_file("coc"))},
        "change_key_file": str(keys / "change.key"), "release_key_file": str(keys / "release.key"),
        "state_dir": str(tmp / "rollouts")}))
    return path


def _site_client(broker: Broker, site: str, password_file: Path) -> FleetMqtt:
    cfg = FleetCliConfig.model_validate({"broker": {"host": "127.0.0.1", "port": broker.port, "username": site,
                                                    "password_file": str(password_file)}})
    return FleetMqtt(cfg).connect()


def test_enrolled_box_passes_check_config_logs_in_and_stays_in_its_own_topics(tmp_path: Path,
                                                                               capsys: Any) -> None:
    keys = tmp_path / "keys"
    assert main(["fleet", "keygen", str(keys)]) == 0
    assert main(["fleet", "keygen", str(keys)]) == 2  # keys are never overwritten
    assert "exists already" in capsys.readouterr().err
    broker = Broker(tmp_path / "mosquitto", users={"coc": "coc-pass"})  # its port is known before it starts
    fleet = _fleet_yaml(tmp_path, broker, keys)
    box = tmp_path / "box"

    capsys.readouterr()
    assert main(["fleet", "enroll", "s7", "--coc-host", "127.0.0.1", "--coc-port", str(broker.port), "--name",
                 "xã Bảy", "--out", str(box), "--box-dir", str(box), "--fleet-config", str(fleet)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    password_line = next(line.strip() for line in lines if line.strip().startswith("s7:$7$101$"))
    acl = [line.strip() for line in lines[lines.index("broker, mosquitto acl_file:") + 1:]]
    assert acl == ["user s7", f"topic write {PREFIX}/s7/#", f"topic read {PREFIX}/s7/cmd/#",
                   f"topic read {PREFIX}/releases/#"]
    assert all(len(line) <= 80 for line in lines if line.strip() != password_line and str(tmp_path) not in line)
    assert (box / "coc.password").stat().st_mode & 0o077 == 0
    assert main(["check-config", str(box / "agent.yaml")]) == 0
    cfg = yaml.safe_load((box / "agent.yaml").read_text())
    assert cfg["coc"]["username"] == "s7" and cfg["fleet"]["change_key_file"] == str(box / "change.pub")
    assert cfg["fleet"]["release_dir"] == "/opt/commune-agent/releases"
    assert (box / "change.pub").read_bytes() == (keys / "change.key.pub").read_bytes()
    assert main(["fleet", "enroll", "s7", "--coc-host", "h", "--out", str(box), "--fleet-config", str(fleet)]) == 2

    # the broker side: the printed lines, verbatim, plus the COC's own user
    with open(broker.dir / "passwd", "a") as f:
        f.write(password_line + "\n")
    (broker.dir / "acl").write_text("user coc\ntopic readwrite #\n\n" + "\n".join(acl) + "\n")
    broker.start()
    rec = Recorder(broker.port, topics=(f"{PREFIX}/s7/status",)).start()
    with open(box / "agent.yaml", "a") as f:
        f.write(f"data_dir: {tmp_path / 'data'}\n")
    agent = AgentProcess(box / "agent.yaml", tmp_path / "agent.log").start()
    try:
        wait_until(lambda: any(m.json().get("online") for m in rec.on("/s7/status")), 30, what="the box's birth")
        site = _site_client(broker, "s7", box / "coc.password")
        try:
            site.subscribe([f"{PREFIX}/+/cmd/#"])  # mosquitto grants it, and delivers only what the ACL allows
            rec.publish(f"{PREFIX}/s8/cmd/ping", b"{}")
            rec.publish(f"{PREFIX}/s7/cmd/ping", b"{}")
            assert site.get(10).topic == f"{PREFIX}/s7/cmd/ping"  # s8's, sent first, never came
            site.publish(f"{PREFIX}/s7/event/probe", b"{}")  # its own topics: taken
            with pytest.raises(FleetError, match="refused .*s8/status: Not authorized"):
                site.publish(f"{PREFIX}/s8/status", b"{}")
        finally:
            site.close()
        with pytest.raises(FleetError, match="refused the login"):
            _site_client(broker, "s7", broker.password_file("coc"))  # another password: no login
    finally:
        agent.stop()
        rec.stop()
        broker.stop()
