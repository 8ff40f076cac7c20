"""The uplink against a real mosquitto: a slow link drains without stalling the event loop, what the broker
can never take is set aside with a reason, a damaged spool page is repaired, refusals keep a topic's order."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from agent import uplink as uplink_mod
from agent.commands import CommandRouter
from agent.config import CocConfig
from agent.logs import KvLogger
from agent.spool import Priority, Record, Spool
from agent.uplink import Uplink
from tests.support.mosquitto import Broker, Recorder
from tests.support.slowproxy import SlowProxy
from tests.support.tasks import cancel_and_wait
from tests.support.wait import async_wait_until

BASE = "commune/v1/t1"


class StallProbe:
    """A task that sleeps 10 ms over and over and records how late it wakes: the event loop's longest stall."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - t0 - 0.01)

    def start(self) -> StallProbe:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)


def make_uplink(spool: Spool, port: int, **cfg: Any) -> Uplink:
    coc = CocConfig(**{"host": "127.0.0.1", "port": port, "reconnect_min_s": 0.2, "reconnect_max_s": 2.0,
                       **cfg})
    return Uplink(coc, "t1", spool, "boot", CommandRouter(KvLogger("c"), 65536, None, 300),
                  lambda: {"online": True}, lambda: {}, KvLogger("t.uplink"))


def open_spool(tmp_path: Path, max_bytes: int = 256 << 20) -> Spool:
    spool = Spool(tmp_path / "spool.db", max_bytes, "boot", KvLogger("t.spool"))
    spool.open()
    return spool


def run_with(up: Uplink, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the uplink around `scenario` in one event loop and stop it cleanly whatever happens."""

    async def main() -> None:
        task = asyncio.create_task(up.run())
        try:
            await scenario()
        finally:
            await up.stop()
            await cancel_and_wait(task)

    asyncio.run(main())


def snapshot(i: int, size: int) -> Record:
    return Record(f"snapshot/cam1/ev{i:03d}", bytes([i % 251]) * size, Priority.BULK, envelope=False)


def test_a_snapshot_backlog_drains_through_a_slow_link_without_stalling_the_loop(
        tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """100 KB/s with ~1 MB of snapshots and a 3 s ACK timeout: the backlog takes far longer than the timeout,
    yet it must drain slowly and in one session, each snapshot delivered once, the loop never frozen."""
    monkeypatch.setattr(uplink_mod, "ACK_TIMEOUT_S", 3.0)
    rate = 100_000
    count, size = 20, 50_000
    proxy = SlowProxy(broker.port, rate)
    rec = Recorder(broker.port, topics=(f"{BASE}/snapshot/#",)).start()
    spool = open_spool(tmp_path)
    spool.put_sync([snapshot(i, size) for i in range(count)])
    up = make_uplink(spool, proxy.port, username="agent", password_file=broker.password_file("agent"))
    probe = StallProbe()

    async def scenario() -> None:
        probe.start()
        try:
            await async_wait_until(lambda: spool.depth == 0, 40, what="the backlog drained")
            await async_wait_until(lambda: len(rec.on("/snapshot/#")) >= count, 10, what="all delivered")
        finally:
            await probe.stop()

    try:
        t0 = time.monotonic()
        run_with(up, scenario)
        elapsed = time.monotonic() - t0
        assert probe.worst < 0.2, f"event loop stalled {probe.worst * 1000:.0f} ms"
        assert up.connects == 1, up.stats()
        per_topic = Counter(m.topic for m in rec.on("/snapshot/#"))
        assert len(per_topic) == count and set(per_topic.values()) == {1}, per_topic
        assert elapsed > count * size / rate * 0.8  # the proxy really was the bottleneck
    finally:
        rec.stop()
        proxy.stop()
        spool.close()


def strict_broker(tmp_path: Path, max_packet: int) -> Broker:
    """A mosquitto that drops the connection of a client sending a packet larger than max_packet (as EMQX does
    above its 1 MB default); MQTT 5 clients hear the limit in CONNACK."""
    broker = Broker(tmp_path / "mosq")
    conf = broker.dir / "mosquitto.conf"
    conf.write_text(f"max_packet_size {max_packet}\n" + conf.read_text())
    return broker.start()


def telemetry(i: int, pad: int = 0) -> Record:
    return Record("telemetry/x", f'{{"readings":[{{"name":"n","value":{i}}}],"pad":"{"p" * pad}"}}'.encode())


def values(rec: Recorder) -> list[int]:
    return [r["value"] for m in rec.on("/telemetry/x") for r in m.json()["readings"]]


@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_a_message_larger_than_the_broker_takes_is_set_aside_and_the_rest_flows(
        tmp_path: Path, version: str) -> None:
    """MQTT 5 reads the limit from CONNACK, 3.1.1 from max_packet_bytes; the oversize row leaves the spool with
    an event saying what went, the rows behind it are delivered, and the session never breaks."""
    broker = strict_broker(tmp_path, 20_000)
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    spool = open_spool(tmp_path)
    spool.put_sync([telemetry(i, 50_000 if i == 3 else 0) for i in range(10)])
    extra = {"mqtt_version": version} if version == "5" else {"mqtt_version": version, "max_packet_bytes": 20_000}
    up = make_uplink(spool, broker.port, username="agent", password_file=broker.password_file("agent"), **extra)

    async def scenario() -> None:
        await async_wait_until(lambda: spool.depth == 0, 10, what="the spool drained")
        await async_wait_until(lambda: rec.on("/event/message_dropped") and len(values(rec)) >= 9, 5,
                               what="rows and the drop notice delivered")

    try:
        run_with(up, scenario)
        assert values(rec) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
        notice = rec.on("/event/message_dropped")[0].json()
        assert notice["data"]["topic"] == "telemetry/x" and notice["data"]["seq"] == 4
        assert notice["data"]["bytes"] > 50_000 and notice["data"]["max_packet_bytes"] == 20_000
        assert notice["source"] == "uplink" and notice["seq"] == 11  # the COC sees it in the same seq stream
        stats = up.stats()
        assert stats["set_aside"] == 1 and stats["max_packet_bytes"] == 20_000 and up.connects == 1, stats
    finally:
        rec.stop()
        spool.close()
        broker.stop()


def test_a_session_that_fails_at_once_backs_off(tmp_path: Path) -> None:
    """A 3.1.1 broker whose limit is not configured drops every session at the oversize row: the reconnect
    backoff grows instead of starting again from its minimum after each (a served-looking) session."""
    broker = strict_broker(tmp_path, 20_000)
    spool = open_spool(tmp_path)
    spool.put_sync([telemetry(0, 50_000)])
    up = make_uplink(spool, broker.port, username="agent", password_file=broker.password_file("agent"),
                     mqtt_version="3.1.1", reconnect_min_s=0.1, reconnect_max_s=1.0)

    async def scenario() -> None:
        await asyncio.sleep(3.0)  # the behaviour under test is a rate: count connects over a fixed time

    try:
        run_with(up, scenario)
        # 0.1 + 0.2 + 0.4 + 0.8 + 1.0 ... (jitter 30 %) leaves room for about 6; from the minimum each time, 20+
        assert 2 <= up.connects <= 7, up.stats()
    finally:
        spool.close()
        broker.stop()


def test_a_page_damaged_under_the_reader_is_quarantined_and_the_rest_delivered(
        tmp_path: Path, broker: Broker) -> None:
    """Corruption met only by the uplink's read (the writer never touched that page): the file is quarantined
    and salvaged, the readable rows are delivered, and the uplink keeps running instead of crash-looping."""
    rec = Recorder(broker.port, topics=(f"{BASE}/telemetry/#",)).start()
    spool = open_spool(tmp_path)
    count = 400
    spool.put_sync([telemetry(i, 1000) for i in range(count)])
    with sqlite3.connect(spool.path) as db:  # every page into the main file, where the garbage goes
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = spool.path.stat().st_size
    with open(spool.path, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xff" * 4096 * 4)
    up = make_uplink(spool, broker.port, username="agent", password_file=broker.password_file("agent"),
                     batch_size=50)

    async def scenario() -> None:  # an uplink that crashed would raise out of run_with
        await async_wait_until(lambda: spool.quarantined and spool.depth == 0, 15, what="repaired and drained")
        await async_wait_until(lambda: count - 1 in values(rec), 5, what="the last row delivered")

    try:
        run_with(up, scenario)
        got = values(rec)
        assert 0 in got and count - 1 in got and len(set(got)) > count // 2, sorted(set(got))
        assert up.stats()["spool_read_errors"] >= 1 and spool.gen == 1
        assert [n["kind"] for n in spool.notices] == ["spool_corrupt"]
    finally:
        rec.stop()
        spool.close()


class RefusingBroker:
    """In front of mosquitto: the first `refuse` QoS1 PUBLISHes on a topic ending in `suffix` never reach it and
    get a PUBACK 0x97 (Quota exceeded), as from a broker with a passing quota; the rest goes through."""

    def __init__(self, target_port: int, suffix: str, refuse: int) -> None:
        self.target_port, self.suffix, self.left = target_port, suffix.encode(), refuse
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> RefusingBroker:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    @staticmethod
    async def _packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        head = bytearray(await reader.readexactly(1))
        length, shift = 0, 0
        while True:
            b = (await reader.readexactly(1))[0]
            head.append(b)
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return bytes(head), await reader.readexactly(length)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def to_broker() -> None:
            while True:
                head, body = await self._packet(reader)
                if head[0] >> 4 == 3 and (head[0] >> 1) & 3 == 1 and self.left > 0:
                    tlen = int.from_bytes(body[:2], "big")
                    if body[2:2 + tlen].endswith(self.suffix):
                        self.left -= 1
                        writer.write(b"\x40\x03" + body[2 + tlen:4 + tlen] + b"\x97")
                        continue
                up_w.write(head + body)

        async def to_client() -> None:
            while data := await up_r.read(65536):
                writer.write(data)

        try:
            await asyncio.gather(to_broker(), to_client())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            up_w.close()


def test_a_refused_batch_is_retried_alone_so_later_rows_never_overtake_it(tmp_path: Path, broker: Broker) -> None:
    """A quota refuses the first two batches (both in flight) and the first retry, then takes everything: a
    retry sent together with the next batch of its topic would let that batch (taken) overtake it (refused
    again). The retry goes alone, so the COC gets the topic in order."""
    rec = Recorder(broker.port, topics=(f"{BASE}/telemetry/#",)).start()
    spool = open_spool(tmp_path)
    count = 200
    spool.put_sync([telemetry(i) for i in range(count)])
    box: dict[str, Uplink] = {}

    async def main() -> None:
        front = await RefusingBroker(broker.port, "/telemetry/x", refuse=150).start()
        up = box["up"] = make_uplink(spool, front.port, username="agent", batch_size=50,
                                     password_file=broker.password_file("agent"))
        task = asyncio.create_task(up.run())
        try:
            await async_wait_until(lambda: spool.depth == 0, 15, what="the spool drained")
            await async_wait_until(lambda: len(set(values(rec))) >= count, 5, what="every row at the COC")
        finally:
            await up.stop()
            await cancel_and_wait(task)
            front.close()

    try:
        asyncio.run(main())
        got = values(rec)
        first = list(dict.fromkeys(got))  # a resend after a reconnect may repeat some: order of first arrival
        assert sorted(first) == list(range(count)) and first == sorted(first), first[:60]
        assert box["up"].rejected == 150
    finally:
        rec.stop()
        spool.close()
