"""Remote configuration cannot cut a box off: a signed push is validated, applied, and kept only if the box
reaches the COC again with every driver that was ok still ok — a wrong broker password, a driver that fails,
a power cut during the gate all bring the last-known-good configuration back, and the COC is told why."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.commands import sign_change
from agent.config_history import ConfigHistory, read_pushed
from agent.remote_config import recover_interrupted
from agent.signing import generate_private_key, read_private_key
from tests.support.agentproc import ROOT, AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.ports import free_port
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


def test_history_records_commits_prunes_and_restores(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "agent.yaml"
    cfg.parent.mkdir()
    history = ConfigHistory(tmp_path / "hist", keep=3)
    cfg.write_text("a: 1\n")
    first = history.current(cfg)
    assert (first.n, history.good().n) == (1, 1)
    assert history.current(cfg).n == 1  # the same bytes are the same version
    (cfg.parent / "pushed").mkdir()
    (cfg.parent / "pushed" / "pw").write_text("secret")
    second = history.current(cfg)
    assert second.n == 2 and second.sha != first.sha  # a pushed file alone makes a new version
    staged = history.record(b"a: 3\n", {}, origin="coc", change_id="r1:t1")
    assert history.good().n == 2 and staged.meta["committed"] is False
    history.restore(first, cfg)
    assert cfg.read_text() == "a: 1\n" and read_pushed(cfg) == {}
    for i in range(4, 8):
        cfg.write_text(f"a: {i}\n")
        history.current(cfg)
    kept = [v.n for v in history.versions()]
    assert len(kept) == 3 and history.good().n == kept[-1]


def test_a_start_during_the_gate_puts_the_good_configuration_back(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("good: true\n")
    history = ConfigHistory(tmp_path / "hist")
    good = history.current(cfg)
    cfg.write_text("good: false\n")
    (tmp_path / "pushed").mkdir()
    (tmp_path / "pushed" / "extra").write_text("x")
    (tmp_path / "fleet-trial.json").write_text(json.dumps({"change_id": "c1", "good_dir": str(good.path),
                                                           "from": good.ref(), "to": {"n": 2, "sha": "x"}}))
    outcome = recover_interrupted(cfg)
    assert outcome is not None and outcome["outcome"] == "rolled_back" and outcome["change_id"] == "c1"
    assert cfg.read_text() == "good: true\n" and read_pushed(cfg) == {}
    assert not (tmp_path / "fleet-trial.json").exists()
    assert json.loads((tmp_path / "fleet-outcome.json").read_text())["reason"].startswith("the agent restarted")
    assert recover_interrupted(cfg) is None


class Box:
    """One real agent process with a change key, and the COC's side of it on the broker."""

    def __init__(self, tmp: Path, broker: Broker, **extra: Any) -> None:
        self.tmp = tmp
        self.key_path = tmp / "keys" / "change.key"
        generate_private_key(self.key_path)
        self.key = read_private_key(self.key_path)
        fleet = {"change_key_file": str(self.key_path) + ".pub", "gate_s": 20}
        fleet.update(extra.pop("fleet", {}))
        self.etc = tmp / "etc"
        self.etc.mkdir()
        self.config = write_config(self.etc / "agent.yaml", broker.port, tmp / "data", broker.password_file("agent"),
                                   fleet=fleet, **extra)
        self.original = self.config.read_bytes()
        self.rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
        self.agent = AgentProcess(self.config, tmp / "agent.log")
        self.n = 0

    def start(self) -> Box:
        births = len(self.births())
        self.agent.start()
        wait_until(lambda: len(self.births()) > births, 30, what="birth")
        return self

    def births(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.rec.on(f"{BASE}/status") if m.payload and m.json().get("online")]

    def send_only(self, name: str, body: dict[str, Any], sign: bool = True) -> str:
        self.n += 1
        rid = f"r{self.n}"
        body = {"request_id": rid, "ts": time.time(), **body}
        if sign:
            body["sig"] = sign_change(self.key, "t1", name, body)
        self.rec.publish(f"{BASE}/cmd/{name}", json.dumps(body))
        return rid

    def send(self, name: str, body: dict[str, Any], sign: bool = True) -> dict[str, Any]:
        rid = self.send_only(name, body, sign)
        return wait_until(lambda: next((m.json() for m in self.rec.on(f"/cmd/{name}/result")
                                        if m.json().get("request_id") == rid), None), 30, what=f"{name} result")

    def change(self, change_id: str, state: str | None = None, timeout: float = 40) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for m in reversed(self.rec.on(f"{BASE}/change")):
                doc = m.json()
                if doc.get("change_id") == change_id and (state is None or doc.get("state") == state):
                    return doc
            return None
        return wait_until(found, timeout, what=f"change {change_id} {state}")

    def events(self, change_id: str) -> list[dict[str, Any]]:
        return [m.json()["data"] for m in self.rec.on(f"{BASE}/event/change")
                if m.json()["data"].get("change_id") == change_id]

    def close(self) -> None:
        self.agent.stop()
        self.rec.stop()


@pytest.fixture
def box(tmp_path: Path, broker: Broker) -> Any:
    made: list[Box] = []

    def make(**extra: Any) -> Box:
        made.append(Box(tmp_path, broker, **extra))
        return made[-1]

    yield make
    for b in made:
        b.close()


def _history(box: Box) -> str:
    return subprocess.run([sys.executable, "-m", "agent", "--config", str(box.config), "config", "history"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_a_good_patch_is_committed_and_shown_as_a_new_version(box: Any) -> None:
    b = box().start()
    assert b.births()[-1]["config_version"]["n"] == 1
    result = b.send("config_apply", {"change_id": "ro1:t1", "patch": {"site": {"site_id": "t1", "name": "Xã Mới"}},
                                     "gate_s": 15})
    assert result["ok"] is True and result["state"] == "gating" and result["to"]["n"] == 2
    done = b.change("ro1:t1", "committed")
    assert done["kind"] == "config" and done["from"]["n"] == 1 and done["to"]["n"] == 2
    wait_until(lambda: b.events("ro1:t1"), 20, what="change event")
    assert b.events("ro1:t1")[0]["outcome"] == "committed"
    # a second operator learns of it from the audit topic, with who asked for it
    [audit] = wait_until(lambda: [m.json()["data"] for m in b.rec.on(f"{BASE}/event/audit")
                                  if m.json()["data"].get("target") == "ro1:t1"], 20, what="audit event")
    assert audit["actor"] == "coc" and audit["action"] == "config_committed" and audit["to"]["n"] == 2
    assert yaml.safe_load(b.config.read_text())["site"]["name"] == "Xã Mới"
    wait_until(lambda: b.births()[-1]["config_version"]["n"] == 2, 20, what="birth with version 2")
    listing = _history(b)
    assert "ro1:t1" in listing and "good" in listing


def test_a_wrong_broker_password_is_rolled_back_and_the_coc_told_why(box: Any) -> None:
    b = box().start()
    coc = yaml.safe_load(b.original)["coc"]
    secret = b.etc / "pushed" / "coc.secret"
    result = b.send("config_apply", {"change_id": "ro2:t1", "patch": {"coc": {**coc, "password_file": str(secret)}},
                                     "files": {"coc.secret": "wrong-password\n"}, "gate_s": 6})
    assert result["ok"] is True
    back = b.change("ro2:t1", "rolled_back")
    assert "COC not reached" in back["reason"], back
    assert b.config.read_bytes() == b.original and not secret.exists()
    wait_until(lambda: b.events("ro2:t1"), 30, what="rolled_back event")
    assert b.events("ro2:t1")[0]["outcome"] == "rolled_back"
    # the box is back online with the good configuration, and still takes changes
    ok = b.send("config_apply", {"change_id": "ro3:t1", "patch": {"host": {"interval_s": 20}}, "gate_s": 15})
    assert ok["ok"] is True
    b.change("ro3:t1", "committed")


def test_a_push_that_makes_a_driver_fail_is_rolled_back(box: Any) -> None:
    port = free_port()
    b = box(console={"listen": "127.0.0.1", "port": port}).start()
    wait_until(lambda: (b.tmp / "data" / "status.json").exists() and json.loads(
        (b.tmp / "data" / "status.json").read_text())["drivers"].get("console", {}).get("state") == "ok", 30,
        what="console ok")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        busy = taken.getsockname()[1]
        result = b.send("config_apply", {"change_id": "ro4:t1", "gate_s": 6,
                                         "patch": {"console": {"listen": "127.0.0.1", "port": busy}}})
        assert result["ok"] is True
        back = b.change("ro4:t1", "rolled_back")
        assert "driver console" in back["reason"], back
        assert b.config.read_bytes() == b.original
    finally:
        taken.close()


def test_refusals_change_nothing(box: Any, tmp_path: Path) -> None:
    b = box().start()
    bad = b.send("config_apply", {"change_id": "ro5:t1", "patch": {"site": {"site_id": "t 1"}}})
    assert bad["ok"] is False and "config rejected: config error: site.site_id" in bad["error"]
    unsigned = b.send("config_apply", {"change_id": "ro6:t1", "patch": {"host": {}}}, sign=False)
    assert unsigned["ok"] is False and "unsigned" in unsigned["error"]
    other = tmp_path / "other.key"
    generate_private_key(other)
    b.key = read_private_key(other)  # a key that is not the COC's
    forged = b.send("config_apply", {"change_id": "ro7:t1", "patch": {"host": {}}})
    assert forged["ok"] is False and "bad signature" in forged["error"]
    b.key = read_private_key(b.key_path)
    both = b.send("config_apply", {"change_id": "ro8:t1", "patch": {"host": {}}, "config": "a: 1"})
    assert both["ok"] is False and "exactly one" in both["error"]
    keyless = b.send("config_apply", {"change_id": "ro11:t1", "patch": {"fleet": {"gate_s": 30}}})
    assert keyless["ok"] is False and "removes fleet.change_key_file" in keyless["error"]
    moved = b.send("config_apply", {"change_id": "ro12:t1", "patch": {"data_dir": str(tmp_path / "elsewhere")}})
    assert moved["ok"] is False and "data_dir cannot change remotely" in moved["error"]
    badname = b.send("config_apply", {"change_id": "ro9:t1", "patch": {"host": {}}, "files": {"../x": "y"}})
    assert badname["ok"] is False and "bad file name" in badname["error"]
    assert b.config.read_bytes() == b.original
    assert not (b.etc / "pushed").exists() or not any((b.etc / "pushed").iterdir())


def test_without_a_change_key_change_commands_are_refused(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"))
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        wait_until(lambda: rec.on(f"{BASE}/status"), 30, what="birth")
        rec.publish(f"{BASE}/cmd/config_apply", json.dumps({"request_id": "x", "change_id": "c", "patch": {}}))
        result = wait_until(lambda: rec.on("/cmd/config_apply/result"), 30)[0].json()
        assert result["ok"] is False and "signing is off" in result["error"]
    finally:
        agent.stop()
        rec.stop()


@pytest.mark.parametrize("step", ["config.staged", "config.written", "config.reloaded", "config.gate_passed",
                                  "config.committed"])
def test_a_power_cut_at_each_step_of_apply_leaves_the_good_configuration(box: Any, step: str) -> None:
    b = box()
    b.agent.env["COMMUNE_AGENT_FAILPOINT"] = step
    b.start()
    b.agent.env.pop("COMMUNE_AGENT_FAILPOINT")
    b.send_only("config_apply", {"change_id": "ro13:t1", "patch": {"host": {"interval_s": 25}}, "gate_s": 15})
    wait_until(lambda: b.agent.proc.poll() is not None, 30, what="power cut")
    assert b.agent.proc.returncode == -9
    b.start()
    back = b.change("ro13:t1", "rolled_back")
    assert "restarted during the health gate" in back["reason"]
    assert b.config.read_bytes() == b.original
    assert b.births()[-1]["config_version"]["n"] == 1
    # and it takes the same change again, to the end
    b.send("config_apply", {"change_id": "ro14:t1", "patch": {"host": {"interval_s": 25}}, "gate_s": 15})
    b.change("ro14:t1", "committed")
    assert b.births()[-1]["config_version"]["n"] == 2 or wait_until(
        lambda: b.births()[-1]["config_version"]["n"] == 2, 20, what="version 2")


def test_a_power_cut_during_the_gate_brings_the_good_configuration_back(box: Any) -> None:
    b = box(console={"listen": "127.0.0.1", "port": free_port()}).start()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        result = b.send("config_apply", {"change_id": "ro10:t1", "gate_s": 120, "patch": {
            "console": {"listen": "127.0.0.1", "port": taken.getsockname()[1]}}})
        assert result["ok"] is True
        b.change("ro10:t1", "gating")
        b.agent.kill9()
        b.start()  # no guard in front of it here: the agent itself finds the interrupted change
        back = b.change("ro10:t1", "rolled_back")
        assert "restarted during the health gate" in back["reason"]
        assert b.config.read_bytes() == b.original
        wait_until(lambda: b.events("ro10:t1"), 30, what="rolled_back event")
    finally:
        taken.close()


def test_the_hmac_key_never_authorises_a_change_command(tmp_path: Path) -> None:
    """A box's HMAC key can be stolen from any box: with it, a change command is still refused."""
    import asyncio

    from agent.commands import CommandRouter, sign
    from agent.logs import KvLogger
    from agent.signing import read_public_key

    hmac_key = b"0123456789abcdef-shared"
    router = CommandRouter(KvLogger("t"), 65536, hmac_key, 300, "t1", tmp_path / "replay.json")

    async def handler(args: dict[str, Any]) -> dict[str, Any]:
        return {"ran": True}

    router.register("config_apply", handler, change=True)
    router.register("ping", handler)
    body = {"request_id": "a", "ts": time.time(), "change_id": "c"}
    body["sig"] = sign(hmac_key, "t1", "config_apply", body)
    out = asyncio.run(router.handle("config_apply", json.dumps(body).encode()))
    assert out["ok"] is False and "signing is off" in out["error"]
    generate_private_key(tmp_path / "change.key")
    router.change_key = read_public_key(tmp_path / "change.key.pub")
    out = asyncio.run(router.handle("config_apply", json.dumps(body).encode()))
    assert out["ok"] is False and "Ed25519" in out["error"]
    body["sig"] = sign_change(read_private_key(tmp_path / "change.key"), "t2", "config_apply", body)
    out = asyncio.run(router.handle("config_apply", json.dumps(body).encode()))
    assert out["ok"] is False and "Ed25519" in out["error"]  # signed for another site
    body["sig"] = sign_change(read_private_key(tmp_path / "change.key"), "t1", "config_apply", body)
    assert asyncio.run(router.handle("config_apply", json.dumps(body).encode()))["ran"] is True
    assert asyncio.run(router.handle("config_apply", json.dumps(body).encode()))["error"] == "replayed command"
    ping = {"request_id": "p", "ts": time.time()}
    ping["sig"] = sign(hmac_key, "t1", "ping", ping)
    assert asyncio.run(router.handle("ping", json.dumps(ping).encode()))["ok"] is True
