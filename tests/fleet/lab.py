"""A COC desk for the fleet CLI's tests: a fleet.yaml with keys for a test broker, the CLI run in process or as a
child, and a few real agents that take changes signed with the fleet's change key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from agent.cli import main
from agent.signing import generate_private_key
from tests.support.agentproc import ROOT, AgentProcess, write_config
from tests.support.mosquitto import Broker

PREFIX = "commune/v1"


class Desk:
    """The operator's machine: keys, fleet.yaml, the rollout state dir."""

    def __init__(self, tmp: Path, broker: Broker, **rollout: Any) -> None:
        self.tmp = tmp
        self.broker = broker
        keys = tmp / "coc-keys"
        generate_private_key(keys / "change.key")
        generate_private_key(keys / "release.key")
        self.change_pub = keys / "change.key.pub"
        self.state_dir = tmp / "rollouts"
        self.path = tmp / "fleet.yaml"
        self.path.write_text(yaml.safe_dump({
            "broker": {"host": "127.0.0.1", "port": broker.port, "username": "coc",
                       "password_file": str(broker.password_file("coc"))},
            "change_key_file": str(keys / "change.key"), "release_key_file": str(keys / "release.key"),
            "state_dir": str(self.state_dir), "rollout": {"site_timeout_s": 30, **rollout}}))

    def run(self, capsys: Any, *argv: str) -> tuple[int, str, str]:
        """The CLI in this process: (exit code, stdout, stderr)."""
        capsys.readouterr()
        code = main(["fleet", *argv, "--fleet-config", str(self.path)])
        out, err = capsys.readouterr()
        return code, out, err

    def json(self, capsys: Any, *argv: str) -> Any:
        code, out, err = self.run(capsys, *argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def child(self, *argv: str, log: Path) -> subprocess.Popen[bytes]:
        """The CLI as its own process (to be killed mid-rollout)."""
        return subprocess.Popen([sys.executable, "-m", "agent", "fleet", *argv, "--fleet-config", str(self.path)],
                                cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def rollouts(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.state_dir.glob("*.json"))]

    def agent(self, site: str) -> AgentProcess:
        """A real agent for `site` that takes changes signed with this desk's change key (gate at its minimum)."""
        d = self.tmp / site
        (d / "etc").mkdir(parents=True)
        cfg = write_config(d / "etc" / "agent.yaml", self.broker.port, d / "data",
                           self.broker.password_file("agent"), site={"site_id": site, "name": f"xã {site}"},
                           fleet={"change_key_file": str(self.change_pub), "gate_s": 10})
        return AgentProcess(cfg, d / "agent.log")
