"""The COC contract against one real agent and mosquitto: what never runs, correlation on every refusal, ts on
every result, the read commands, audit, catch-up."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent import __version__
from agent.command_args import all_commands
from tests.support.agentproc import ROOT, AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"
_ids = itertools.count(1)


class Coc:
    """A COC-side client of one running agent: send a command, wait for the result with its request_id."""

    def __init__(self, rec: Recorder, agent: AgentProcess, data_dir: Path) -> None:
        self.rec, self.agent, self.data_dir = rec, agent, data_dir

    def results(self, name: str) -> list[dict[str, Any]]:
        return [m.json() for m in self.rec.on(f"/cmd/{name}/result")]

    def send(self, name: str, payload: bytes, retain: bool = False) -> None:
        self.rec.publish(f"{BASE}/cmd/{name}", payload, retain=retain)

    def ask(self, name: str, args: dict[str, Any] | None = None, timeout: float = 15) -> dict[str, Any]:
        rid = f"r{next(_ids)}"
        self.send(name, json.dumps({"request_id": rid, **(args or {})}).encode())
        return self.wait(name, rid, timeout)

    def wait(self, name: str, rid: str, timeout: float = 15) -> dict[str, Any]:
        found = wait_until(lambda: [r for r in self.results(name) if r.get("request_id") == rid], timeout,
                           what=f"{name} result {rid}")
        return found[0]


@pytest.fixture(scope="module")
def coc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coc]:
    tmp = tmp_path_factory.mktemp("contract")
    broker = Broker(tmp / "mosquitto").start()
    data = tmp / "data"
    cfg = write_config(tmp / "agent.yaml", broker.port, data, broker.password_file("agent"),
                       coc={"max_command_bytes": 4096})
    agent = AgentProcess(cfg, tmp / "agent.log").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    try:
        wait_until(lambda: [m for m in rec.on(f"{BASE}/status") if m.json().get("online")], 20, what="birth")
        yield Coc(rec, agent, data)
    finally:
        rec.stop()
        agent.stop()
        broker.stop()


def test_ping_names_the_version_and_configuration(coc: Coc) -> None:
    before = time.time()
    res = coc.ask("ping")
    assert res["ok"] is True and res["pong"] is True
    assert res["agent_version"] == __version__
    assert isinstance(res["config_version"], dict) and res["config_version"]["n"] >= 1
    assert before - 1 <= res["ts"] <= time.time() + 1


def test_empty_payload_never_runs(coc: Coc) -> None:
    seen = len(coc.results("rebirth"))
    coc.send("rebirth", b"")
    res = wait_until(lambda: coc.results("rebirth")[seen:], 15, what="result of the empty command")[0]
    assert res["ok"] is False and res["error"] == "empty payload" and res["request_id"] is None
    assert isinstance(res["ts"], float)


def test_retained_command_never_runs_even_while_connected(coc: Coc) -> None:
    coc.send("ping", json.dumps({"request_id": "kept"}).encode(), retain=True)
    coc.ask("ping")  # answered after the retained one arrived: had it run, its result would be there too
    coc.send("ping", b"", retain=True)  # clearing the retained message: not a command either
    coc.ask("ping")
    assert not [r for r in coc.results("ping") if r.get("request_id") == "kept"]
    assert [r for r in coc.results("ping") if r.get("error") == "empty payload"] == []
    assert coc.agent.log_text().count("reason=retained") >= 2


@pytest.mark.parametrize(("payload", "why"), [
    (b'{"request_id": "big-1", "pad": "' + b"x" * 5000 + b'"}', "too large"),
    (b'{"request_id": "sur-1", "text": "\\ud800"}', "malformed JSON"),
    (b'{"request_id": "bad-1", "text": "unterminated', "malformed JSON"),
    (b'{"request_id": "utf-1", "text": "\xff\xfe"}', "malformed JSON"),
    (b'{"request_id": 77, "n": 1e999999, ', "malformed JSON"),
])
def test_refusals_keep_the_request_id(coc: Coc, payload: bytes, why: str) -> None:
    rid: Any = json.loads(payload[payload.index(b":") + 1:payload.index(b",")])
    coc.send("ping", payload)
    res = wait_until(lambda: [r for r in coc.results("ping") if r.get("request_id") == rid], 15, what=str(rid))[0]
    assert res["ok"] is False and why in res["error"]
    assert isinstance(res["ts"], float)


def test_arguments_are_checked_by_the_commands_schema(coc: Coc) -> None:
    res = coc.ask("ping", {"verbose": True})
    assert res["ok"] is False and res["error"] == "invalid arguments: verbose: Extra inputs are not permitted"
    assert res["request_id"] and isinstance(res["ts"], float)


def test_schema_commands_publishes_one_schema_per_command() -> None:
    out = subprocess.run([sys.executable, "-m", "agent.cli", "schema", "--commands"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    schemas = json.loads(out)
    assert set(schemas) == set(all_commands())
    assert {"ping", "rebirth", "reload", "config_get", "config_apply", "config_rollback", "update", "broadcast",
            "bulletins", "snapshot", "clip", "cameras", "links", "sensors"} <= set(schemas)
    for name, schema in schemas.items():
        assert schema["title"] == name and schema["additionalProperties"] is False
        assert {"request_id", "ts", "sig"} <= set(schema["properties"])
    assert schemas["clip"]["properties"]["chunk_bytes"]["maximum"] == 4 * 1024 * 1024
