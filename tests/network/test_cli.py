"""`commune-agent links` reads the driver's state file through the real config loader."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from agent.statefile import write_json
from drivers.network.cli import add_commands, links_command

CONFIG = """\
site: {{site_id: "18241"}}
coc: {{host: 127.0.0.1}}
data_dir: {data_dir}
network:
  links:
    - name: fibre
      interface: wan1
      gateway: 10.201.1.1
      source: 10.201.1.2
      targets: [{{address: 198.51.100.1}}, {{address: 198.51.100.2}}]
"""


def _args(path: Path, as_json: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["links"] + (["--json"] if as_json else []))
    args.config = str(path)
    return args


def test_links_prints_live_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    assert links_command(_args(cfg)) == 1  # no state yet: the agent is not running
    assert "no link state" in capsys.readouterr().err
    now = time.time()
    write_json(tmp_path / "data" / "network" / "links.json", {
        "updated": now, "current": "fibre", "current_since": now - 90, "mode": "managed", "switches_last_hour": 1,
        "failback_damped": False,
        "links": [{"name": "fibre", "state": "up", "since": now - 90, "interface": "wan1", "priority": 1,
                   "metered": False, "in_use": True, "reason": "healthy on 2/2 targets",
                   "targets": [{"target": "icmp:198.51.100.1", "state": "up", "loss_pct": 0.0, "rtt_min_ms": 1.0,
                                "rtt_avg_ms": 2.0, "rtt_max_ms": 3.5, "jitter_ms": 0.4}]}]})
    assert links_command(_args(cfg)) == 0
    out = capsys.readouterr().out
    assert "in use: fibre for 1m30s" in out
    assert "* fibre" in out and "icmp:198.51.100.1" in out and "1.0/2.0/3.5 ms" in out
    assert links_command(_args(cfg, as_json=True)) == 0
    assert json.loads(capsys.readouterr().out)["current"] == "fibre"
