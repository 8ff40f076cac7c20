"""Core tasks are supervised: a crashing one restarts with backoff, shows in health, and the watchdog
is withheld while one is down; the uplink survives a spool replaced under it."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from agent.commands import CommandRouter
from agent.config import CocConfig, load
from agent.logs import KvLogger
from agent.spool import Record, Spool
from agent.supervisor import CoreTask, Supervisor
from agent.uplink import Uplink
from tests.core.agentproc import write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.tasks import cancel_and_wait
from tests.support.wait import async_wait_until, wait_until

BASE = "commune/v1/t1"


def test_a_crashing_core_task_restarts_with_backoff_and_withholds_the_watchdog(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # pings every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = write_config(tmp_path / "agent.yaml", 1, tmp_path / "data", None)
    try:
        sup = Supervisor(load(cfg))
        sup.spool = Spool(tmp_path / "s.db", 1 << 20, "b", KvLogger("t.spool"))
        sup.spool.open()
        crashes = 0
        healthy = asyncio.Event()

        async def flaky() -> None:
            nonlocal crashes
            if crashes < 2:
                crashes += 1
                raise OSError("database is closed")
            healthy.set()
            await asyncio.Event().wait()

        def pings() -> list[str]:
            out = []
            while True:
                try:
                    out += sock.recv(4096).decode().split("\n")
                except BlockingIOError:
                    return out

        async def scenario() -> None:
            task = CoreTask("uplink", flaky, sup.health_changed)
            sup.core["uplink"] = task.start()
            watchdog = asyncio.create_task(sup._watchdog_loop())
            try:
                await async_wait_until(lambda: task.state == "failed", 5, what="first crash")
                pings()
                await asyncio.sleep(0.5)  # the task waits 1 s before its restart: no WATCHDOG=1 meanwhile
                if task.state == "failed":
                    assert "WATCHDOG=1" not in pings()
                await asyncio.wait_for(healthy.wait(), 10)
                assert task.restarts == 2 and task.last_error == "OSError: database is closed"
                snap = sup.health_payload()["core"]["uplink"]
                assert snap["state"] == "running" and snap["restarts"] == 2
                pings()
                await async_wait_until(lambda: "WATCHDOG=1" in pings(), 5, what="watchdog back")
            finally:
                await cancel_and_wait(watchdog)
                await task.stop(1)

        asyncio.run(scenario())
        sup.spool.close()
    finally:
        sock.close()


def test_uplink_survives_a_spool_replaced_while_connected(tmp_path: Path, broker: Broker) -> None:
    """Ids restart in a new file: old PUBACKs must not delete new rows, nothing unsent may go."""
    rec = Recorder(broker.port, topics=(f"{BASE}/telemetry/#",)).start()
    spool = Spool(tmp_path / "s.db", 64 << 20, "boot", KvLogger("t.spool"))
    spool.open()
    cfg = CocConfig(host="127.0.0.1", port=broker.port, username="agent",
                    password_file=broker.password_file("agent"), batch_size=50, reconnect_min_s=0.1,
                    reconnect_max_s=0.5)
    up = Uplink(cfg, "t1", spool, "boot", CommandRouter(KvLogger("c"), 65536, None, 300),
                lambda: {"online": True}, lambda: {}, KvLogger("t.uplink"))

    def recs(lo: int, hi: int) -> list[Record]:
        return [Record("telemetry/x", json.dumps({"readings": [{"name": "n", "value": i}]}).encode())
                for i in range(lo, hi)]

    def got() -> set[int]:
        return {r["value"] for m in rec.on("/telemetry/x") for r in m.json()["readings"]}

    async def scenario() -> None:
        task = asyncio.create_task(up.run())
        try:
            await async_wait_until(lambda: up.connected, 10, what="connected")
            for k in range(20):
                await spool.put(recs(k * 100, k * 100 + 100))
                up.wakeup.set()
                if k % 5 == 4:  # the file is replaced while rows are in flight
                    await asyncio.to_thread(spool.quarantine_sync, "replaced by the test")
            await async_wait_until(lambda: spool.depth == 0, 30, what="drained")
        finally:
            await up.stop()
            await cancel_and_wait(task)

    asyncio.run(scenario())
    try:
        wait_until(lambda: set(range(2000)) <= got(), 20, what="every row delivered")
        assert spool.gen == 4
    finally:
        spool.close()
        rec.stop()
