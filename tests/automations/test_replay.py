"""`commune-agent automations test RULE --replay FILE` on a recorded hour (as the COC broker saw it, and as CSV)
prints exactly the firings the rule would have made; `automations list|status` show the rules and their state."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from agent.cli import main
from agent.driver import Reading
from drivers.automations.config import AutomationsConfig
from drivers.automations.rules import Engine
from tests.support.agentproc import ROOT

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 11, 20, 1, 0, tzinfo=TZ).timestamp()
RULES = [
    {"id": "flood", "trigger": {"reading": {"name": "water_level", "device": "river-1", "above": 3.0, "for": "10m"}},
     "actions": [{"bulletin": {"text": "Mực nước sông {device} đã lên {value} mét, vượt mức báo động {level}"}}],
     "cooldown_s": "45m"},
    {"id": "on-4g", "trigger": {"link": {"kind": "failover", "link": "wan-4g"}},
     "actions": [{"event": {"kind": "on_4g"}}], "confirm": {"timeout_s": 60, "on_timeout": "drop"}},
]


def level(minute: float) -> float:
    """Above the level 01:10-01:25 and from 01:40; river-2 is always high (another device)."""
    return 3.4 if 10 <= minute < 25 or minute >= 40 else 2.8


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("replay")
    cfg = {"site": {"site_id": "t1", "name": "test", "timezone": "Asia/Ho_Chi_Minh"},
           "coc": {"host": "127.0.0.1", "port": 1883}, "data_dir": str(tmp / "data"),
           "automations": {"rules": RULES}}
    (tmp / "agent.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    lines, rows = [], ["ts,name,value,device,source,unit"]
    for i in range(121):  # every 30 s, 01:00:00 .. 02:00:00
        ts = T0 + i * 30
        readings = [{"name": "water_level", "value": level(i / 2), "unit": "m",
                     "tags": {"source": "river-bus", "device": d}} for d in ("river-1", "river-2")]
        lines.append("commune/v1/t1/telemetry/sensors " + json.dumps({"seq": i, "ts": ts, "readings": readings}))
        rows.append(f"{datetime.fromtimestamp(ts, TZ).replace(tzinfo=None).isoformat()},water_level,{level(i / 2)},"
                    "river-1,river-bus,m")
    failover = {"id": "e1", "seq": 999, "ts": T0 + 33 * 60, "kind": "failover", "severity": "warning",
                "source": "network", "data": {"from": "wan-fiber", "to": "wan-4g", "reason": "loss"}}
    lines.insert(70, "commune/v1/t1/event/failover " + json.dumps(failover))
    lines.insert(3, "commune/v1/t1/status " + json.dumps({"online": True}))
    (tmp / "hour.log").write_text("\n".join(lines) + "\n")
    (tmp / "hour.csv").write_text("\n".join(rows) + "\n")
    return tmp


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(setup: Path, *args: str) -> Ran:
    """The CLI's own main() in this process (starting Python nine times would cost seconds)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--config", str(setup / "agent.yaml"), "automations", *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Ran(code, out.getvalue(), err.getvalue())


def test_the_installed_command_runs_a_replay(setup: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "agent.cli", "--config", str(setup / "agent.yaml"), "automations",
                          "test", "flood", "--replay", str(setup / "hour.log")], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.splitlines()[0] == FIRED, out.stderr


FIRED = ("2026-11-20 01:20:00  fire  water_level=3,4 above 3 for 10m00s on river-1  "
         "=> Mực nước sông river-1 đã lên 3,4 mét, vượt mức báo động 3")
HELD = "2026-11-20 01:50:00  suppressed (cooldown)  water_level=3,4 above 3 for 10m00s on river-1"


def test_a_recorded_hour_prints_exactly_the_firings(setup: Path) -> None:
    out = cli(setup, "test", "flood", "--replay", str(setup / "hour.log"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        FIRED, "# 243 items (2026-11-20 01:00:00 .. 2026-11-20 02:00:00); 1 firing(s), 1 held back"]
    shown = cli(setup, "test", "flood", "--replay", str(setup / "hour.log"), "--all").stdout.splitlines()
    assert shown[:2] == [FIRED, HELD]
    # the same hour as a CSV of readings: the same firings
    csv_out = cli(setup, "test", "flood", "--replay", str(setup / "hour.csv"), "--all").stdout.splitlines()
    assert csv_out[:2] == [FIRED, HELD] and csv_out[2].startswith("# 121 items")
    link = cli(setup, "test", "on-4g", "--replay", str(setup / "hour.log")).stdout.splitlines()
    assert link[0] == ("2026-11-20 01:33:00  fire  failover from wan-fiber to wan-4g  ask officials, drop after 60s"
                       "  => on-4g")
    assert not (setup / "data" / "automations").exists()  # a dry run: nothing acted, nothing saved


def test_a_bad_recording_or_rule_is_refused_with_exit_2(setup: Path) -> None:
    bad = setup / "bad.csv"
    bad.write_text("ts,name,value\nyesterday,water_level,3\n")
    out = cli(setup, "test", "flood", "--replay", str(bad))
    assert out.returncode == 2 and "bad.csv:2: ts 'yesterday'" in out.stderr
    out = cli(setup, "test", "nope", "--replay", str(bad))
    assert out.returncode == 2 and "no rule 'nope' (rules: flood, on-4g)" in out.stderr


def test_list_and_status_show_the_rules_and_their_saved_state(setup: Path) -> None:
    rules = AutomationsConfig.model_validate({"rules": RULES}).rules
    engine = Engine(rules, TZ)
    now = datetime.now(TZ).timestamp()
    engine.feed("sensors", [Reading("water_level", 3.5, "m", now, {"source": "river-bus", "device": "river-1"})], now)
    engine.switch("on-4g", False)
    data = setup / "data" / "automations"
    data.mkdir(parents=True)
    try:
        (data / "state.json").write_text(json.dumps(engine.state.to_json()))
        listed = cli(setup, "list").stdout.splitlines()
        assert listed[0].startswith("flood  on   trigger=reading  actions=bulletin  cooldown=2700s cap=10/day")
        assert "confirm=60s/drop" in listed[1]
        status = json.loads(cli(setup, "status", "--json").stdout)
        by_id = {r["rule"]: r for r in status["rules"]}
        assert by_id["flood"]["timers"] == {"river-bus|river-1": pytest.approx(now)}
        assert by_id["on-4g"]["enabled"] is False
    finally:
        (data / "state.json").unlink()
        data.rmdir()
