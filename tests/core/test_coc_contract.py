"""The COC contract against one real agent and mosquitto: what never runs, correlation on every refusal, ts on
every result, the read commands, audit, catch-up."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from agent import __version__
from agent.cli import main as cli_main
from agent.command_args import all_commands
from agent.topics import topic_of, validate
from tests.broadcast.harness import write_bulletin
from tests.console.conftest import bulletin_form, login, page_csrf
from tests.console.harness import OFFICIAL, ConsoleAgent
from tests.support.agentproc import ROOT
from tests.support.mosquitto import Broker, Recorder
from tests.support.ports import free_port
from tests.support.wait import wait_until

BASE = "commune/v1/t1"
_ids = itertools.count(1)


class Coc:
    """A COC-side client of one running agent: send a command, wait for the result with its request_id."""

    def __init__(self, rec: Recorder, agent: ConsoleAgent, broker: Broker) -> None:
        self.rec, self.agent, self.broker = rec, agent, broker

    def results(self, name: str) -> list[dict[str, Any]]:
        return [m.json() for m in self.rec.on(f"/cmd/{name}/result")]

    def send(self, name: str, payload: bytes, retain: bool = False) -> None:
        self.rec.publish(f"{BASE}/cmd/{name}", payload, retain=retain)

    def ask(self, name: str, args: dict[str, Any] | None = None, timeout: float = 15) -> dict[str, Any]:
        rid = f"r{next(_ids)}"
        self.send(name, json.dumps({"request_id": rid, **(args or {})}).encode())
        return self.wait(name, rid, timeout)

    def ask_until(self, name: str, good: Callable[[dict[str, Any]], bool], timeout: float = 20,
                  args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ask again until the answer is `good` (the box has not seen everything yet)."""
        def answered() -> dict[str, Any] | None:
            res = self.ask(name, args)
            return res if good(res) else None
        return wait_until(answered, timeout, interval=0.2, what=f"a good answer to {name}")

    def wait(self, name: str, rid: str, timeout: float = 15) -> dict[str, Any]:
        found = wait_until(lambda: [r for r in self.results(name) if r.get("request_id") == rid], timeout,
                           what=f"{name} result {rid}")
        return found[0]


@pytest.fixture(scope="module")
def coc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coc]:
    """One agent with every family a dashboard reads: broadcast (ALSA file device), the console, sensors over MQTT
    on the same broker, a camera whose stream is not there, and the network driver without links."""
    tmp = tmp_path_factory.mktemp("contract")
    broker = Broker(tmp / "mosquitto").start()
    secret = broker.password_file("agent")
    sensors = {"flush_interval_s": 0.1, "mqtt": [{
        "name": "farm", "port": broker.port, "username": "agent", "password_file": str(secret),
        "topics": [{"filter": "tele/+/SENSOR", "format": "tasmota",
                    "fields": [{"source": "WL.Level", "name": "water_level", "unit": "m"}]}]}],
        "alarms": [{"reading": "water_level", "high": 3.0}]}
    cameras = {"open_timeout_s": 0.5, "offline_after_s": 1,
               "devices": [{"name": "cong", "rtsp_url": f"rtsp://127.0.0.1:{free_port()}/none"}]}
    agent = ConsoleAgent(tmp / "agent", broker.port, secret, broadcast={"bulletin_dir": str(tmp / "bulletins")},
                         extra={"coc": {"max_command_bytes": 4096}, "sensors": sensors, "cameras": cameras,
                                "network": {}}).add_users()
    agent.tmp.mkdir(parents=True, exist_ok=True)
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    agent.start()
    try:
        wait_until(lambda: [m for m in rec.on(f"{BASE}/status") if m.json().get("online")], 20, what="birth")
        yield Coc(rec, agent, broker)
    finally:
        rec.stop()
        agent.stop()
        broker.stop()
    assert "Traceback" not in agent.proc.log_text()
    assert "command_without_schema" not in agent.proc.log_text()


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
    assert coc.agent.proc.log_text().count("reason=retained") >= 2


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


def test_read_commands_answer_what_the_box_holds(coc: Coc) -> None:
    coc.rec.publish("tele/river-1/SENSOR", json.dumps({"WL": {"Level": 3.5}}))
    coc.rec.publish("tele/river-2/SENSOR", json.dumps({"WL": {"Level": 1.25}}))
    sensors = coc.ask_until("sensors", lambda r: r["total"] >= 2 and bool(r["alarms"]))
    by_device = {i["device"]: i for i in sensors["items"]}
    assert by_device["river-2"]["value"] == 1.25 and by_device["river-2"]["unit"] == "m"
    assert [a["device"] for a in sensors["alarms"]] == ["river-1"]
    assert sensors["next"] is None and sensors["page"] == 0
    first = coc.ask("sensors", {"limit": 1})
    assert len(first["items"]) == 1 and first["next"] == 1 and first["total"] == 2
    second = coc.ask("sensors", {"page": first["next"], "limit": 1})
    assert second["next"] is None and second["items"][0] != first["items"][0]

    cams = coc.ask_until("cameras", lambda r: r["items"][0]["online"] is False)
    [cam] = cams["items"]
    assert cam["name"] == "cong" and cam["problem"]
    assert cam["last_event"]["kind"] == "camera_offline"

    links = coc.ask("links")
    assert links["ok"] is True

    cfg = coc.ask("config_get")
    sections = {i["section"]: i["value"] for i in cfg["items"]}
    assert sections["site"]["site_id"] == "t1" and cfg["config_version"]["n"] >= 1
    assert sections["sensors"]["mqtt"][0]["password_file"] == "••••••"  # masked as the console masks it
    assert "agent-pass" not in json.dumps(cfg)
    assert sections["coc"]["max_command_bytes"] == 4096


def audits(coc: Coc, target: str) -> list[dict[str, Any]]:
    return [m.json()["data"] for m in coc.rec.on("/event/audit") if m.json()["data"].get("target") == target]


def bulletin(bid: str) -> dict[str, Any]:
    return {"id": bid, "title": f"Họp {bid}", "text": "Xin chào bà con.", "schedule": {"times": ["06:30"]},
            "zones": ["loa"]}


def listed(coc: Coc) -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in coc.ask("bulletins", {"limit": 500})["items"]}


def test_bulletins_and_audit_after_changes_from_the_coc_the_console_and_a_file(coc: Coc) -> None:
    made = coc.ask("broadcast", {"action": "create", "bulletin": bulletin("coc-1")})
    assert made["ok"] is True
    row = listed(coc)["coc-1"]
    assert row["source"] == "coc" and row["zones"] == ["loa"] and row["next_airings"] == made["next_airings"]
    assert row["next_airings"] and "T06:30:00" in row["next_airings"][0]
    [audit] = wait_until(lambda: audits(coc, "coc-1"), 15, what="audit of the COC's create")
    assert audit["actor"] == "coc" and audit["action"] == "bulletin_create" and audit["ok"] is True

    official = login(coc.agent.url, OFFICIAL)
    title = f"Tiêm phòng {time.monotonic_ns()}"
    token = page_csrf(official, coc.agent.url + "/bulletins/new")
    r = official.post(coc.agent.url + "/bulletins/new", data={**bulletin_form(title=title), "csrf": token},
                      allow_redirects=False, timeout=20)
    assert r.status_code == 303
    [from_console] = [b for b in listed(coc).values() if b["title"] == title]
    assert from_console["source"] == f"console:{OFFICIAL[0]}" and len(from_console["next_airings"]) >= 2
    [audit] = wait_until(lambda: audits(coc, from_console["id"]), 15, what="audit of the console's create")
    assert audit["actor"] == f"console:{OFFICIAL[0]}" and audit["action"] == "bulletin_create"

    path = write_bulletin(coc.agent.tmp.parent / "bulletins", "tu-file", bulletin("tu-file"))
    file_row = coc.ask_until("bulletins", lambda r: any(b["id"] == "tu-file" for b in r["items"]))
    assert [b["source"] for b in file_row["items"] if b["id"] == "tu-file"] == [f"file:{path}"]
    [audit] = wait_until(lambda: audits(coc, "tu-file"), 15, what="audit of the file's bulletin")
    assert audit["actor"] == f"file:{path}" and audit["action"] == "bulletin_create"

    assert coc.ask("broadcast", {"action": "cancel", "id": "coc-1"})["ok"] is True
    assert "coc-1" not in listed(coc)
    cancel = wait_until(lambda: [a for a in audits(coc, "coc-1") if a["action"] == "bulletin_cancel"], 15)
    assert cancel[0]["actor"] == "coc"
    zones = coc.ask("bulletins")["zones"]
    assert set(zones) == {"loa", "xom"} and zones["xom"]["type"] == "rtp"


def catch_up(coc: Coc, limit: int, **since: Any) -> list[dict[str, Any]]:
    """Every page of a catch_up, following `next`."""
    items: list[dict[str, Any]] = []
    page: int | None = 0
    while page is not None:
        res = coc.ask("catch_up", {**since, "page": page, "limit": limit})
        assert res["ok"] is True and len(res["items"]) <= limit, res
        items += res["items"]
        page = res["next"]
    return items


def test_catch_up_returns_exactly_the_events_a_dashboard_missed(coc: Coc) -> None:
    dash = Recorder(coc.broker.port, topics=(f"{BASE}/event/#",)).start()
    try:
        coc.ask("broadcast", {"action": "create", "bulletin": bulletin("seen-1")})
        wait_until(lambda: [m for m in dash.on("/event/audit") if m.json()["data"]["target"] == "seen-1"], 15)
    finally:
        dash.stop()
    last = max((m.json() for m in dash.on("/event/#")), key=lambda d: d["seq"])
    boot_id, seen_seq = last["boot_id"], last["seq"]
    # while the dashboard is away: changes by the COC and an alarm
    for bid in ("away-1", "away-2"):
        coc.ask("broadcast", {"action": "create", "bulletin": bulletin(bid)})
    coc.ask("broadcast", {"action": "cancel", "id": "away-1"})
    coc.rec.publish("tele/river-9/SENSOR", json.dumps({"WL": {"Level": 4.2}}))
    wait_until(lambda: [m for m in coc.rec.on("/event/sensor_alarm") if m.json()["data"]["device"] == "river-9"], 15)
    wait_until(lambda: len([m for m in coc.rec.on("/event/audit") if m.json()["data"]["target"] == "away-1"]) == 2,
               15)
    missed = sorted(d["seq"] for d in (m.json() for m in coc.rec.on("/event/#"))
                    if d["boot_id"] == boot_id and d["seq"] > seen_seq)
    assert len(missed) >= 4

    def caught() -> list[dict[str, Any]] | None:
        got = catch_up(coc, 2, since_seq=seen_seq, boot_id=boot_id)
        return got if {d["seq"] for d in got} >= set(missed) else None

    got = wait_until(caught, 15, interval=0.2, what="the catch-up to hold what was missed")
    assert [d["seq"] for d in got if d["seq"] <= missed[-1]] == missed
    assert all(d["historical"] is True and d["boot_id"] == boot_id for d in got)
    by_seq = {m.json()["seq"]: m.json() for m in coc.rec.on("/event/#") if m.json()["boot_id"] == boot_id}
    assert all({**d, "historical": by_seq[d["seq"]]["historical"]} == by_seq[d["seq"]] for d in got)

    audits_only = catch_up(coc, 50, since_seq=seen_seq, boot_id=boot_id, kinds=["audit"])
    assert {d["data"]["target"] for d in audits_only} >= {"away-1", "away-2"}
    assert {d["kind"] for d in audits_only} == {"audit"}
    since = catch_up(coc, 50, since_ts=last["ts"])
    assert {d["seq"] for d in since} >= {d["seq"] for d in got if d["ts"] > last["ts"]}
    assert coc.ask("catch_up", {})["error"] == "give exactly one of since_ts or since_seq"


def test_everything_on_the_wire_is_what_the_contract_says(coc: Coc) -> None:
    """Every message this module's agent sent (status, health, telemetry, events, results) against agent/topics.py;
    the README's table is checked against the same definitions in test_contract_drift.py."""
    coc.ask("broadcast", {"action": "create", "bulletin": bulletin("contract-1")})  # an audit event, whatever ran
    wait_until(lambda: [m for m in coc.rec.on("/event/audit") if m.json()["data"].get("target") == "contract-1"], 15,
               what="the audit event of the change")
    coc.ask("rebirth")
    seen = [m for m in coc.rec.snapshot() if m.topic.startswith(BASE + "/")
            and getattr(topic_of(m.topic[len(BASE) + 1:]), "direction", "") != "from_coc"]  # not this test's own
    suffixes = {m.topic[len(BASE) + 1:].split("/")[0] for m in seen}
    assert {"status", "health", "telemetry", "event", "cmd"} <= suffixes
    for m in seen:
        validate(m.topic[len(BASE) + 1:], m.payload)


def test_fleet_show_reads_a_site_that_answers_and_falls_back_to_retained_documents(coc: Coc, tmp_path: Path,
                                                                                   capsys: Any) -> None:
    coc.ask("broadcast", {"action": "create", "bulletin": bulletin("fleet-1")})
    coc.ask_until("cameras", lambda r: r["items"][0]["online"] is False)  # its stream is not there: shown OFFLINE
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(json.dumps({"broker": {"host": "127.0.0.1", "port": coc.broker.port, "username": "coc",
                                            "password_file": str(coc.broker.password_file("coc"))},
                                 "state_dir": str(tmp_path / "rollouts")}))
    capsys.readouterr()
    assert cli_main(["fleet", "show", "t1", "--wait", "30", "--fleet-config", str(fleet)]) == 0  # ends once answered
    out = capsys.readouterr().out
    assert "bulletins:" in out and "fleet-1" in out and "cameras:" in out and "cong" in out and "OFFLINE" in out
    assert "sensors:" in out and "links:" in out and all(len(line) <= 80 for line in out.splitlines())
    assert cli_main(["fleet", "show", "t1", "--json", "--wait", "30", "--fleet-config", str(fleet)]) == 0
    live = json.loads(capsys.readouterr().out)["live"]
    assert set(live) == {"bulletins", "cameras", "sensors", "links"} and all(r["ok"] for r in live.values())
    assert cli_main(["fleet", "show", "t1", "--wait", "0", "--fleet-config", str(fleet)]) == 0
    out = capsys.readouterr().out
    assert "drivers:" in out and "bulletins:" not in out
