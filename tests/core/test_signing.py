"""Signed commands fail closed: bad key files are config errors, the signature binds the site,
replay memory survives a restart, retained commands are ignored; local calls skip signing only."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.commands import CommandRouter, sign
from agent.driver import CommandError
from agent.logs import KvLogger
from agent.section import read_key_file
from tests.support.agentproc import ROOT, AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"
KEY = b"a-key-for-site-t1-only"


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("content, why", [
    (b"", "empty"),
    (b"   \n\t\n", "empty"),
    (b"\xff\xfe\x00\x01binary-key-material", "binary"),
    (b"short\n", "at least 16"),
    (b"hex:zz\n", "hex"),
    (b"base64:!!!\n", "base64"),
    (b"two\nlines-of-key-material\n", "one line"),
])
def test_bad_key_files_are_config_errors_naming_the_file(tmp_path: Path, content: bytes, why: str) -> None:
    key = tmp_path / "cmd.key"
    key.write_bytes(content)
    cfg = write_config(tmp_path / "agent.yaml", 1883, tmp_path / "data", None, coc={"command_key_file": str(key)})
    res = check_config(cfg)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"coc.command_key_file: {key}" in res.stderr and why in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_binary_keys_in_hex_and_base64(tmp_path: Path) -> None:
    raw = bytes(range(32))
    for text in (f"hex:{raw.hex()}\n", f"base64:{base64.b64encode(raw).decode()}\n"):
        key = tmp_path / "cmd.key"
        key.write_text(text)
        assert read_key_file(key) == raw
        cfg = write_config(tmp_path / "agent.yaml", 1883, tmp_path / "data", None,
                           coc={"command_key_file": str(key)})
        assert check_config(cfg).returncode == 0
    key.write_text(KEY.decode() + "\n")
    assert read_key_file(key) == KEY


def router(tmp_path: Path, site: str = "t1") -> CommandRouter:
    r = CommandRouter(KvLogger("test.cmd"), 4096, KEY, 60, site, tmp_path / "replay.json")

    async def echo(args: dict) -> dict:
        if args.get("fail"):
            raise CommandError("asked to fail")
        return {"echo": args}

    r.register("echo", echo)
    return r


def signed(name: str, site: str = "t1", **body: object) -> bytes:
    msg = {"request_id": "x", "ts": time.time(), **body}
    msg["sig"] = sign(KEY, site, name, msg)
    return json.dumps(msg).encode()


def test_signature_binds_the_site_and_replay_memory_survives_a_new_router(tmp_path: Path) -> None:
    raw = signed("echo", n=1)
    assert asyncio.run(router(tmp_path).handle("echo", raw))["ok"] is True
    # a restarted agent (a new router on the same data dir) still refuses the replay
    assert asyncio.run(router(tmp_path).handle("echo", raw))["error"] == "replayed command"
    # the same key, signed for another site: refused here
    other = signed("echo", site="t2", n=2)
    assert asyncio.run(router(tmp_path).handle("echo", other))["error"] == "bad signature"
    assert asyncio.run(router(tmp_path, site="t2").handle("echo", other))["ok"] is True


def test_hostile_signature_fields_never_raise(tmp_path: Path) -> None:
    r = router(tmp_path)
    cases = [
        {"ts": time.time(), "sig": "ü" * 64},
        {"ts": int("9" * 400), "sig": "0" * 64},
        {"ts": -int("9" * 400), "sig": "0" * 64},
        {"ts": 1e308, "sig": "0" * 64},
        {"ts": time.time(), "sig": "\ud800" * 64},
        {"ts": time.time(), "sig": ["x"]},
        {"ts": True, "sig": "0" * 64},
    ]
    for body in cases:
        raw = json.dumps(body).encode()
        res = asyncio.run(r.handle("echo", raw))
        assert res["ok"] is False and res["error"], (body, res)
    res = asyncio.run(r.handle("ec\udc80ho", b"{}"))
    assert res["ok"] is False
    res = asyncio.run(r.handle("echo", b'{"request_id": "\\ud800"}'))
    assert res["ok"] is False and "malformed" in res["error"]
    assert r.counters["ok"] == 0


def test_call_local_skips_signing_and_keeps_the_result_shape(tmp_path: Path) -> None:
    r = router(tmp_path)

    async def scenario() -> None:
        # the handler is told who called (the console names its user); the result keeps the MQTT shape
        res = await r.call_local("echo", {"a": 1}, "console:user=lan")
        assert isinstance(res.pop("ts"), float)
        assert res == {"request_id": None, "ok": True, "echo": {"a": 1, "source": "console:user=lan"}}
        res = await r.call_local("echo", {"fail": 1}, "console", request_id="c1")
        assert isinstance(res.pop("ts"), float)
        assert res == {"request_id": "c1", "ok": False, "error": "asked to fail"}
        res = await r.call_local("nope", {}, "console")
        assert res["ok"] is False and "unknown command" in res["error"]
        res = await r.call_local("echo", ["not", "a", "dict"], "console")  # type: ignore[arg-type]
        assert res["ok"] is False
        # the MQTT path still insists on a signature
        assert "unsigned" in (await r.handle("echo", b'{"a":1}'))["error"]

    asyncio.run(scenario())
    assert r.counters["local_ok"] == 1 and r.counters["rejected_local_invalid"] == 1


def test_replay_after_restart_retained_ignored_and_bad_key_reload_refused(tmp_path: Path, broker: Broker) -> None:
    key_file = tmp_path / "cmd.key"
    key_file.write_text(KEY.decode() + "\n")
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"),
                       coc={"command_key_file": str(key_file)})
    rec = Recorder(broker.port, topics=(f"{BASE}/cmd/+/result", f"{BASE}/status")).start()
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()

    def results(rid: str) -> list[dict]:
        return [m.json() for m in rec.on("/cmd/ping/result") if m.json().get("request_id") == rid]

    def births() -> int:
        return len([m for m in rec.on(f"{BASE}/status") if m.json().get("online")])

    try:
        wait_until(lambda: births() >= 1, 20, what="birth")
        first = {"request_id": "p1", "ts": time.time()}
        first["sig"] = sign(KEY, "t1", "ping", first)
        raw = json.dumps(first)
        rec.publish(f"{BASE}/cmd/ping", raw)
        assert wait_until(lambda: results("p1"), 20)[0]["ok"] is True
        agent.stop()
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        wait_until(lambda: births() >= 2, 20, what="second birth")
        rec.publish(f"{BASE}/cmd/ping", raw)
        again = wait_until(lambda: results("p1")[1:], 20, what="replay result")[0]
        assert again == {"request_id": "p1", "ok": False, "error": "replayed command", "ts": again["ts"]}
        # a retained command is never executed (it would run again on every reconnect)
        kept = {"request_id": "ret", "ts": time.time()}
        kept["sig"] = sign(KEY, "t1", "ping", kept)
        rec.publish(f"{BASE}/cmd/ping", json.dumps(kept), retain=True)
        # delivered live, MQTT 5 keeps its retain flag (retain-as-published): not run either
        wait_until(lambda: "command_ignored" in agent.log_text(), 20, what="retained command ignored live")
        agent.stop()
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        wait_until(lambda: agent.log_text().count("command_ignored") >= 2, 20, what="retained command ignored")
        assert results("ret") == []
        rec.publish(f"{BASE}/cmd/ping", b"", retain=True)  # clear the retained message
        # emptying the key file: the reload is refused and the old key stays in force
        key_file.write_text("\n")
        agent.signal(signal.SIGHUP)
        wait_until(lambda: "reload_rejected" in agent.log_text(), 20, what="reload refused")
        assert "command_key_file" in agent.log_text()
        later = {"request_id": "p2", "ts": time.time()}
        later["sig"] = sign(KEY, "t1", "ping", later)
        rec.publish(f"{BASE}/cmd/ping", json.dumps(later))
        assert wait_until(lambda: results("p2"), 20)[0]["ok"] is True
        unsigned = {"request_id": "p3"}
        rec.publish(f"{BASE}/cmd/ping", json.dumps(unsigned))
        assert "unsigned" in wait_until(lambda: results("p3"), 20)[0]["error"]
    finally:
        agent.stop()
        rec.stop()


def test_a_key_rotated_in_place_is_in_force_after_sighup_and_after_the_reload_command(tmp_path: Path,
                                                                                     broker: Broker) -> None:
    """The key file keeps its path; its content decides which key signs (the revoked one is refused)."""
    keys = {name: f"{name}-command-key-for-site-t1".encode() for name in ("old", "new", "newer")}
    key_file = tmp_path / "cmd.key"
    key_file.write_bytes(keys["old"] + b"\n")
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"),
                       coc={"command_key_file": str(key_file)})
    rec = Recorder(broker.port, topics=(f"{BASE}/cmd/+/result", f"{BASE}/status")).start()
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    sent = 0

    def command(name: str, key: str) -> dict:
        nonlocal sent
        sent += 1
        body = {"request_id": f"{key}-{sent}", "ts": time.time()}
        body["sig"] = sign(keys[key], "t1", name, body)
        rec.publish(f"{BASE}/cmd/{name}", json.dumps(body))
        return wait_until(lambda: [m.json() for m in rec.on(f"/cmd/{name}/result")
                                   if m.json().get("request_id") == body["request_id"]], 20,
                          what=f"result of {body['request_id']}")[0]

    try:
        wait_until(lambda: [m for m in rec.on(f"{BASE}/status") if m.json().get("online")], 20, what="birth")
        assert command("ping", "old")["ok"] is True
        key_file.write_bytes(keys["new"] + b"\n")  # rotated in place: same path, same config
        agent.signal(signal.SIGHUP)
        wait_until(lambda: "reload_done" in agent.log_text(), 20, what="reload after SIGHUP")
        refused = command("ping", "old")
        assert refused == {"request_id": "old-2", "ok": False, "error": "bad signature", "ts": refused["ts"]}
        assert command("ping", "new")["ok"] is True
        # the COC's own `reload` (signed with the key in force) applies the next rotation the same way
        key_file.write_bytes(keys["newer"] + b"\n")
        assert command("ping", "new")["ok"] is True  # nothing changes before a reload
        assert command("reload", "new")["ok"] is True
        assert command("ping", "new")["error"] == "bad signature"
        assert command("ping", "newer")["ok"] is True
        assert agent.log_text().count("command_key_changed") == 2
        assert keys["new"].decode() not in agent.log_text()
    finally:
        agent.stop()
        rec.stop()
