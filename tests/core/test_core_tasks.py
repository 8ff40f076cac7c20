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
from tests.support.agentproc import write_config
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
                async with asyncio.timeout(10):
                    await healthy.wait()
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


def test_cancelled_during_a_slow_tls_connect_leaves_no_orphan_client(tmp_path: Path) -> None:
    """A reload that cancels the uplink mid-handshake: the abandoned client is closed before a new one
    logs in with the same client id, so it never takes the new session over."""
    from agent.config import TlsConfig
    from tests.core.test_supervisor import make_certs

    pki = tmp_path / "pki"
    pki.mkdir()
    certs = make_certs(pki)
    broker = Broker(tmp_path / "mosq", tls={k: certs[k] for k in ("ca", "cert", "key")}).start()
    spool = Spool(tmp_path / "s.db", 64 << 20, "boot", KvLogger("t.spool"))
    spool.open()
    conns = 0

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        if conns == 1:
            await asyncio.sleep(2.0)  # the first TLS handshake hangs for 2 s (a slow 4G link)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", broker.tls_port)
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def make(port: int) -> Uplink:
        cfg = CocConfig(host="127.0.0.1", port=port, client_id="same-id", reconnect_min_s=0.1, reconnect_max_s=0.5,
                        keepalive_s=5, tls=TlsConfig(ca_file=certs["ca"], cert_file=certs["client_cert"],
                                                     key_file=certs["client_key"]))
        return Uplink(cfg, "t1", spool, "boot", CommandRouter(KvLogger("c"), 65536, None, 300),
                      lambda: {"online": True}, lambda: {}, KvLogger("t.uplink"))

    async def scenario() -> None:
        proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = proxy.sockets[0].getsockname()[1]
        first = make(port)
        task = asyncio.create_task(first.run())
        await async_wait_until(lambda: conns == 1, 5, what="first connect under way")
        await asyncio.sleep(0.3)
        await cancel_and_wait(task)  # what a reload does to the old uplink
        await first.wait_orphans(6)
        second = make(port)
        task2 = asyncio.create_task(second.run())
        try:
            await async_wait_until(lambda: second.connected, 10, what="second uplink connected")
            await asyncio.sleep(3.0)  # an orphan logging in late would kick this session now
            assert second.connected and second.connects == 1, second.stats()
        finally:
            await second.stop()
            await cancel_and_wait(task2)
            proxy.close()

    try:
        asyncio.run(scenario())
    finally:
        spool.close()
        broker.stop()
