"""COC commands: malformed, oversized, unknown and unsigned commands get error results, never a crash."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

from agent.commands import CommandRouter, sign
from agent.driver import CommandError
from agent.logs import KvLogger
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


def router(key: bytes | None = None, replay_file: Path | None = None) -> CommandRouter:
    r = CommandRouter(KvLogger("test.cmd"), 4096, key, 60, "t1", replay_file)

    async def echo(args: dict) -> dict:
        if args.get("fail"):
            raise CommandError("asked to fail")
        if args.get("boom"):
            raise ZeroDivisionError("bug")
        return {"echo": args}

    r.register("echo", echo)
    return r


def run(r: CommandRouter, name: str, payload: bytes) -> dict:
    """The result without its `ts` (checked here: every result carries one)."""
    res = asyncio.run(r.handle(name, payload))
    assert isinstance(res.pop("ts"), float)
    return res


def test_router_results() -> None:
    r = router()
    assert run(r, "echo", b'{"request_id":"a","x":1}') == {"request_id": "a", "ok": True, "echo": {"x": 1}}
    assert run(r, "echo", b'{"request_id":"b","fail":1}') == {"request_id": "b", "ok": False,
                                                              "error": "asked to fail"}
    boom = run(r, "echo", b'{"request_id":"c","boom":1}')
    assert boom["ok"] is False and boom["error"] == "internal error: ZeroDivisionError"
    assert run(r, "nope", b"{}")["error"] == "unknown command 'nope'"
    assert "too large" in run(r, "echo", b"{" + b" " * 5000 + b"}")["error"]
    assert "malformed JSON" in run(r, "echo", b"{nope")["error"]
    assert run(r, "echo", b"[1,2]")["error"] == "command must be a JSON object"
    assert "request_id" in run(r, "echo", b'{"request_id":[1]}')["error"]
    assert r.counters["ok"] == 1 and r.counters["rejected_malformed"] == 3


def test_signed_commands_and_replay() -> None:
    key = b"k" * 32
    r = router(key)
    body = {"request_id": "r1", "ts": time.time(), "x": "ủy ban"}
    body["sig"] = sign(key, "t1", "echo", body)
    raw = json.dumps(body).encode()
    assert run(r, "echo", raw)["ok"] is True
    assert run(r, "echo", raw)["error"] == "replayed command"
    assert "unsigned" in run(r, "echo", b'{"request_id":"r2"}')["error"]
    stale = {"request_id": "r3", "ts": time.time() - 3600}
    stale["sig"] = sign(key, "t1", "echo", stale)
    assert "window" in run(r, "echo", json.dumps(stale).encode())["error"]
    forged = dict(body, request_id="r4", ts=time.time())
    assert run(r, "echo", json.dumps(forged).encode())["error"] == "bad signature"
    # signed for another command name: refused
    other = {"request_id": "r5", "ts": time.time()}
    other["sig"] = sign(key, "t1", "ping", other)
    assert run(r, "echo", json.dumps(other).encode())["error"] == "bad signature"
    assert r.counters["rejected_auth"] == 5


def random_payload(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return b"{" * rng.randrange(1, 5000)
    if kind == 2:
        return json.dumps([rng.random() for _ in range(10)]).encode()
    if kind == 3:
        return json.dumps({"request_id": {"nested": True}}).encode()
    if kind == 4:
        return b"x" * 70000
    if kind == 5:
        return json.dumps({"request_id": rng.randrange(10**6), "n": float("nan")}).encode().replace(b"NaN", b"NaN")
    if kind == 6:
        return "{\"request_id\": \"\u0000\ud7ff\", \"a\": 1}".encode()
    return b""


def test_thousand_malformed_commands_over_mqtt(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"))
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/cmd/+/result", f"{BASE}/status")).start()
    try:
        wait_until(lambda: rec.on(f"{BASE}/status"), 20, what="birth")
        rng = random.Random(7)
        names = ["ping", "reload", "rebirth", "broadcast", "x" * 200, "%", "snapshot", "ủy-ban"]
        for _ in range(1000):
            rec.client.publish(f"{BASE}/cmd/{rng.choice(names)}", random_payload(rng), qos=1)
        rec.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": "last"}))
        results = wait_until(lambda: [m for m in rec.snapshot() if m.topic.endswith("/result")]
                             if len([m for m in rec.snapshot() if m.topic.endswith("/result")]) >= 1001 else None,
                             60, what="1001 results")
        bodies = [m.json() for m in results]
        assert all(isinstance(b["ok"], bool) for b in bodies)
        assert any(b.get("request_id") == "last" and b["ok"] for b in bodies)
        assert sum(1 for b in bodies if not b["ok"]) >= 900
        assert agent.proc is not None and agent.proc.poll() is None
        assert "Traceback" not in agent.log_text()
    finally:
        rec.stop()
        agent.stop()


def test_signed_ping_over_mqtt(tmp_path: Path, broker: Broker) -> None:
    key_file = tmp_path / "cmd.key"
    key_file.write_text("s3cret-key-for-t1-only\n")
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"),
                       coc={"command_key_file": str(key_file)})
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/cmd/+/result", f"{BASE}/status")).start()
    try:
        wait_until(lambda: rec.on(f"{BASE}/status"), 20, what="birth")
        body = {"request_id": "s1", "ts": time.time()}
        body["sig"] = sign(b"s3cret-key-for-t1-only", "t1", "ping", body)
        rec.publish(f"{BASE}/cmd/ping", json.dumps(body))
        rec.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": "u1"}))
        res = wait_until(lambda: {m.json()["request_id"]: m.json() for m in rec.on("/cmd/ping/result")}
                         if len(rec.on("/cmd/ping/result")) >= 2 else None, 20)
        assert res["s1"]["ok"] is True and res["s1"]["pong"] is True
        assert res["u1"]["ok"] is False and "unsigned" in res["u1"]["error"]
    finally:
        rec.stop()
        agent.stop()


def test_mqtt_311_session_births_and_answers_commands(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"),
                       coc={"mqtt_version": "3.1.1"})
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    try:
        wait_until(lambda: [m for m in rec.on(f"{BASE}/status") if m.json().get("online")], 20, what="birth")
        rec.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": "v311"}))
        res = wait_until(lambda: rec.on("/cmd/ping/result"), 20)[0].json()
        assert res == {**res, "request_id": "v311", "ok": True, "pong": True}
        assert "mqtt=3.1.1" in agent.log_text()
    finally:
        rec.stop()
        agent.stop()
