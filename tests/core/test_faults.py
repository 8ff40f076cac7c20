"""The agent as a real process meets faults: a full disk, a broker that refuses, kill -9 while evicting,
reloads from two sources at once, a shutdown where everything hangs."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from agent.spool import disk_bytes
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


def values(rec: Recorder, suffix: str = "telemetry/emitter") -> set[int]:
    out = set()
    for m in rec.on(f"{BASE}/{suffix}"):
        for r in m.json()["readings"]:
            out.add(r["value"])
    return out


def acked(path: Path) -> set[int]:
    if not path.exists():
        return set()
    return {int(x) for x in path.read_text().split() if x.isdigit()}


def status(data: Path) -> dict:
    try:
        return json.loads((data / "status.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "mnt", "6m") as mnt:
        yield mnt


def test_disk_full_while_the_broker_is_down_loses_nothing_that_was_durable(tmp_path: Path, tmpfs: Path) -> None:
    broker = Broker(tmp_path / "mosq").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/#",), persistent=True).start()
    acked_file = tmp_path / "acked"
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"),
                       spool={"path": str(tmpfs / "spool.db"), "max_bytes": "64MiB"})
    agent = AgentProcess(cfg, tmp_path / "agent.log",
                         emitter={"rate_hz": 100, "count": 0, "acked_file": str(acked_file), "concurrency": 4})
    agent.start()
    try:
        wait_until(lambda: len(values(rec)) > 50, 20, what="live telemetry")
        broker.stop()
        n = len(acked(acked_file))
        wait_until(lambda: len(acked(acked_file)) > n + 400, 30, what="emits while the broker is down")
        filler = tmpfs / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        wait_until(lambda: "spool_degraded" in agent.log_text(), 30, what="spool_degraded")
        s = wait_until(lambda: status(data) if status(data).get("spool", {}).get("spool_state") == "degraded"
                       else None, 20, what="degraded in health")
        assert s["spool"]["spool_degraded_reason"]
        wait_until(lambda: status(data).get("drivers", {}).get("emitter", {}).get("counters", {})
                   .get("emit_refused", 0) > 0, 20, what="refused emits counted")
        assert not list(tmpfs.glob("spool.db.corrupt-*")), "a full disk is not corruption"
        durable = acked(acked_file)
        filler.unlink()
        wait_until(lambda: "spool_resumed" in agent.log_text(), 30, what="spool_resumed")
        broker.start()
        wait_until(lambda: durable <= values(rec), 60, what="every durable reading delivered")
        wait_until(lambda: {"spool_degraded", "spool_resumed"} <= {m.topic.rsplit("/", 1)[-1]
                                                                   for m in rec.on(f"{BASE}/event/#")},
                   20, what="spool_degraded and spool_resumed events delivered")
        assert agent.proc is not None and agent.proc.poll() is None
        assert "Traceback" not in agent.log_text()
    finally:
        agent.stop()
        rec.stop()
        broker.stop()


def refusing_acl(broker: Broker, allow_telemetry: bool) -> None:
    lines = ["user coc", "topic readwrite #", "", "user agent",
             f"topic readwrite {BASE}/status", f"topic readwrite {BASE}/health",
             f"topic readwrite {BASE}/event/#", f"topic readwrite {BASE}/cmd/#"]
    if allow_telemetry:
        lines.append(f"topic readwrite {BASE}/#")
    (broker.dir / "acl").write_text("\n".join(lines) + "\n")


def test_a_broker_refusing_telemetry_makes_the_agent_keep_it(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "mosq")
    refusing_acl(broker, allow_telemetry=False)
    broker.start()
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    acked_file = tmp_path / "acked"
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"))
    agent = AgentProcess(cfg, tmp_path / "agent.log",
                         emitter={"rate_hz": 200, "count": 300, "acked_file": str(acked_file)}).start()
    try:
        wait_until(lambda: len(acked(acked_file)) == 300, 30, what="all emitted")

        def refused() -> dict | None:
            for m in reversed(rec.on(f"{BASE}/health")):
                r = m.json().get("uplink", {}).get("refused_topics", {}).get("telemetry/emitter")
                if r:
                    return r
            return None

        try:
            r = wait_until(refused, 20, what="refusal in health")
        except AssertionError as exc:  # which of connect, publish, refusal or health did not happen
            raise AssertionError(f"{exc}; agent log tail:\n{agent.log_text()[-3000:]}") from None
        assert "0x87" in r["reason"] and "authori" in r["reason"].lower(), r
        assert values(rec) == set()
        wait_until(lambda: status(data).get("spool", {}).get("spool_depth", 0) >= 300, 10,
                   what="the refused readings still in the spool")
        assert "uplink_publish_refused" in agent.log_text()
        refusing_acl(broker, allow_telemetry=True)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)  # mosquitto re-reads its ACL file
        wait_until(lambda: set(range(300)) <= values(rec), 60, what="all delivered once the ACL allows it")
        wait_until(lambda: status(data).get("spool", {}).get("spool_depth", 1) == 0, 20, what="spool drained")
        assert "uplink_topic_accepted" in agent.log_text()

        def cleared() -> bool:  # health_interval_s is 30: this must come from the change itself
            last = rec.on(f"{BASE}/health")[-1].json()
            return last["spool"]["spool_depth"] == 0 and last["uplink"]["refused_topics"] == {}
        wait_until(cleared, 10, what="health showing the refusal cleared and the backlog gone")
    finally:
        agent.stop()
        rec.stop()
        broker.stop()


def test_kill9_during_eviction_leaves_a_sound_bounded_spool(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "mosq")  # down: the spool fills and evicts
    acked_file = tmp_path / "acked"
    data = tmp_path / "data"
    max_bytes = 1 << 20
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"),
                       spool={"max_bytes": max_bytes})
    emitter = {"rate_hz": 200, "count": 0, "acked_file": str(acked_file), "concurrency": 8}
    log = tmp_path / "agent.log"
    for life in range(5):
        agent = AgentProcess(cfg, log, emitter=emitter).start()
        if life == 0:
            wait_until(lambda: "spool_full_drop" in log.read_text(), 60, what="eviction under way")
        before = log.read_text().count("spool_full_drop")
        before_acked = len(acked(acked_file))
        wait_until(lambda b=before_acked: len(acked(acked_file)) > b + 300, 30, what="emits in this life")
        agent.kill9()
        assert life == 0 or log.read_text().count("spool_full_drop") >= before
    db = data / "spool.db"
    assert sqlite3.connect(db).execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert disk_bytes(db) <= max_bytes
    want = sorted(acked(acked_file))[-500:]  # the newest readings cannot have been evicted
    broker.start()
    rec = Recorder(broker.port, topics=(f"{BASE}/telemetry/#",)).start()
    agent = AgentProcess(cfg, log, emitter={**emitter, "count": 1, "rate_hz": 1}).start()
    try:
        wait_until(lambda: set(want) <= values(rec), 60, what="the newest readings delivered")
        assert "Traceback" not in log.read_text()
    finally:
        agent.stop()
        rec.stop()
        broker.stop()


def test_sighup_and_coc_reload_at_once_leave_exactly_one_instance(tmp_path: Path, broker: Broker,
                                                                 recorder: Recorder) -> None:
    settings = tmp_path / "emitter.json"
    instances = tmp_path / "instances"
    base = {"rate_hz": 20, "count": 0, "acked_file": str(tmp_path / "acked"), "instances_file": str(instances),
            "stop_delay_s": 0.5}  # stopping takes a while, so the reloads overlap
    settings.write_text(json.dumps(base))
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"))
    agent = AgentProcess(cfg, tmp_path / "agent.log", emitter=settings).start()

    def running() -> int:
        lines = instances.read_text().split("\n") if instances.exists() else []
        return sum(1 for x in lines if x.startswith("start")) - sum(1 for x in lines if x.startswith("stop"))

    try:
        wait_until(lambda: [m for m in recorder.on(f"{BASE}/status") if m.json().get("online")], 20, what="birth")
        wait_until(lambda: running() == 1, 10, what="emitter running")
        for round_ in range(3):
            settings.write_text(json.dumps({**base, "rate_hz": 21 + round_}))
            done = agent.log_text().count("reload_done")
            ids = [f"r{round_}-{i}" for i in range(3)]
            t = threading.Thread(target=lambda w=ids: [recorder.client.publish(
                f"{BASE}/cmd/reload", json.dumps({"request_id": i}), qos=1) for i in w])
            t.start()
            agent.signal(signal.SIGHUP)
            t.join()
            wait_until(lambda d=done: agent.log_text().count("reload_done") >= d + 4, 30, what="all four reloads")
            wait_until(lambda w=set(ids): w <= {m.json()["request_id"] for m in recorder.on("/cmd/reload/result")},
                       10, what="reload results")
            wait_until(lambda: running() == 1 and status(data).get("driver_instances") == {"emitter": 1, "host": 1},
                       15, what="exactly one instance of each driver")
        assert sum(1 for x in instances.read_text().split("\n") if x.startswith("start")) >= 4
        time.sleep(0.5)  # a late orphan would show now
        assert running() == 1
    finally:
        agent.stop()


def blackhole() -> tuple[socket.socket, int]:
    """A TCP listener that accepts and never answers: CONNECT waits for a CONNACK that never comes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    return srv, srv.getsockname()[1]


def test_shutdown_fits_inside_the_stop_timeout_when_everything_hangs(tmp_path: Path) -> None:
    srv, port = blackhole()
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    cfg = write_config(tmp_path / "agent.yaml", port, tmp_path / "data", pw)
    agent = AgentProcess(cfg, tmp_path / "agent.log",
                         emitter={"rate_hz": 10, "count": 0, "acked_file": str(tmp_path / "acked"),
                                  "ignore_cancel_s": 120}).start()
    try:
        wait_until(lambda: "agent_started" in agent.log_text(), 20, what="start")
        wait_until(lambda: (tmp_path / "acked").exists(), 20, what="emitter running")
        t0 = time.monotonic()
        agent.signal(signal.SIGTERM)
        assert agent.proc is not None
        rc = agent.proc.wait(25)
        took = time.monotonic() - t0
        unit = (Path(__file__).resolve().parents[2] / "systemd" / "commune-agent.service").read_text()
        stop_timeout = int(next(x for x in unit.splitlines() if x.startswith("TimeoutStopSec=")).split("=")[1])
        assert took < stop_timeout / 2, f"shutdown took {took:.1f} s against TimeoutStopSec={stop_timeout}"
        assert rc == 0
        assert "driver_stop_slow" in agent.log_text() and "shutdown_forced" in agent.log_text()
    finally:
        agent.stop()
        srv.close()
