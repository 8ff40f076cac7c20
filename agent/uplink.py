"""The only MQTT client to the COC: birth/LWT, the spool drained in order, commands in."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import ssl
import time
from collections import deque
from typing import Any, Awaitable, Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.backoff import Backoff
from agent.commands import CommandRouter
from agent.config import CocConfig
from agent.driver import Event, Scalar, health_params, health_text
from agent.history import History
from agent.logs import KvLogger
from agent.payloads import event_dict, to_json
from agent.pubacks import Batch, PubackTracker, reason_text
from agent.refusals import RefusalHolds
from agent.section import read_secret
from agent.spool import (
    Cursor,
    Priority,
    Record,
    Spool,
    SpoolClosed,
    SpoolRow,
    SpoolUnavailable,
    describe,
    is_corruption,
)

CONNECT_TIMEOUT_S = 15.0  # TCP + TLS + CONNACK
SOCKET_TIMEOUT_S = 4.0  # paho's blocking connect(): bounds how long a cancelled connect can linger
ACK_TIMEOUT_S = 30.0  # a batch with no PUBACK at all for this long (a slow link still makes progress) ends the session
HANG_UP_GRACE_S = 1.0  # how long a DISCONNECT may take to get out before the socket is shut
STOP_PUBLISH_S = 2.0
MAX_REFUSALS_SHOWN = 20
STABLE_SESSION_S = 10.0  # a session that delivered nothing and ended sooner does not reset the reconnect backoff
BATCH_TARGET_S = 2.0  # a batch's bytes: the acknowledged rate (two batches sharing the link) x this
FIRST_WINDOW_BYTES = 256 * 1024  # batch bytes before the link's rate is known
MIN_WINDOW_BYTES = 16 * 1024
SLOWEST_LINK_BYTES_S = 8 * 1024  # 64 kbit/s: a single large row gets this long beyond ACK_TIMEOUT_S
MAX_WINDOW_BYTES = 64 * 1024 * 1024
DROPPED_KIND = "message_dropped"
TOPIC_SUFFIX_ALLOWANCE = 200  # the longest topic after <prefix>/<site_id>/: clip/{camera}/{clip_id}/{offset}
PACKET_SLACK = 80  # a PUBLISH's bytes besides payload, topic and boot_id: header, lengths, id, envelope text


def publish_packet_bytes(topic: str, payload_len: int, v5: bool) -> int:
    """A QoS1 PUBLISH's size on the wire, what a broker's maximum packet size counts: fixed header, topic,
    packet id, MQTT 5's (empty) property length and the payload."""
    remaining = 2 + len(topic.encode("utf-8", "replace")) + 2 + (1 if v5 else 0) + payload_len
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16_384 else 3 if remaining < 2_097_152 else 4
    return 1 + length_bytes + remaining


def with_envelope(row: SpoolRow, boot_id: str) -> bytes:
    """Prefix the stored JSON object with seq, boot_id and historical without re-parsing it."""
    historical = row.historical or row.boot_id != boot_id
    head = f'{{"seq":{row.seq},"boot_id":"{row.boot_id}","historical":{"true" if historical else "false"}'
    body = row.payload[1:]
    return head.encode() + (b"," + body if body.strip() != b"}" else body)


def cut(rows: list[SpoolRow], window: int) -> tuple[list[SpoolRow], list[SpoolRow]]:
    """The rows that fit a batch of `window` bytes (always at least one), and the rest."""
    total = 0
    for i, row in enumerate(rows):
        total += row.size
        if i and total > window:
            return rows[:i], rows[i:]
    return rows, []


class _Feed:
    """Spool rows in order for one session; the next read is under way while a batch is acknowledged."""

    def __init__(self, spool: Spool, fetch: Callable[[Cursor], Awaitable[list[SpoolRow]]]) -> None:
        self._spool, self._fetch = spool, fetch
        self._cursor = Cursor()
        self._carry: list[SpoolRow] = []  # rows read but not yet published
        self._ahead: asyncio.Future[list[SpoolRow]] | None = None

    async def next(self, window: int) -> list[SpoolRow]:
        """The next rows for a batch of `window` bytes; empty when the spool has nothing more."""
        if not self._carry:
            ahead, self._ahead = self._ahead, None
            self._carry = await ahead if ahead is not None else await self._fetch(self._cursor)
        rows, self._carry = cut(self._carry, window)
        return rows

    def read_ahead(self) -> None:
        """Start the next read while the batches in flight are acknowledged."""
        if not self._carry and self._ahead is None:
            self._ahead = asyncio.ensure_future(self._fetch(self._cursor))

    async def rewind(self) -> None:
        """Read again from the oldest row (rows in flight are skipped by the spool's fetch)."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            self._carry += await ahead
        self.give_back([])
        self._cursor = Cursor()

    def give_back(self, rows: list[SpoolRow]) -> None:
        """`rows` and every row read but not published go back to the spool."""
        self._spool.release(rows + self._carry)
        self._carry = []

    def close(self) -> None:
        self.give_back([])
        if self._ahead is not None:  # rows it marked in flight are freed by the next session's release_all
            self._ahead.cancel()


class _Session:
    """One MQTT connection: what paho's thread reports to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connack: asyncio.Future[ReasonCode | int] = loop.create_future()
        self.closed = asyncio.Event()
        self.pubacks: PubackTracker[SpoolRow] = PubackTracker(loop)
        self.disconnect_reason = ""
        self.max_packet: int | None = None  # MQTT 5 CONNACK's Maximum Packet Size, if the broker sent one
        self.delivered = 0


class Uplink:
    """Connects with capped backoff plus jitter; at-least-once delivery from the spool."""

    def __init__(self, cfg: CocConfig, site_id: str, spool: Spool, boot_id: str, router: CommandRouter,
                 birth: Callable[[], dict[str, Any]], health: Callable[[], dict[str, Any]], log: KvLogger,
                 on_change: Callable[[], None] = lambda: None, history: History | None = None) -> None:
        self.cfg = cfg
        self.history = history  # delivered events are kept there for the COC's catch_up
        self.base = f"{cfg.topic_prefix.rstrip('/')}/{site_id}"
        self.spool = spool
        self.boot_id = boot_id
        self.router = router
        self.birth = birth
        self.health = health
        self.log = log
        self.on_change = on_change
        self.state = "starting"
        self.detail = ""
        self.detail_template = ""
        self.detail_params: dict[str, Scalar] = {}
        self.connected_since: float | None = None
        self.published = 0
        self.connects = 0
        self.holds = RefusalHolds(cfg.reconnect_min_s, cfg.reconnect_max_s, log)
        self.wakeup = asyncio.Event()
        self._client: mqtt.Client | None = None
        self._session: _Session | None = None
        self._stopping = False
        self._stopped_client: mqtt.Client | None = None
        self._commands: set[asyncio.Future[None]] = set()
        self._orphans: set[asyncio.Future[Any]] = set()
        self._rewind = False  # a refused topic was accepted again: rows skipped while it was held go now
        self.set_aside = 0  # rows larger than the broker takes: removed from the spool, the COC told
        self.read_errors = 0  # spool reads that failed (a damaged file is quarantined, others retried)
        self._read_failing = False
        self._broker_max_packet: int | None = None  # from the latest CONNACK (MQTT 5)
        self._subscriptions: dict[str, Callable[[str, bytes, bool], None]] = {}  # topic filter -> callback
        self.unsolicited = 0  # messages on no topic this agent subscribes to (late after an unsubscribe)
        self._window = FIRST_WINDOW_BYTES  # bytes per batch, sized to what the link acknowledges
        self._row_bytes = 1024.0  # running mean of a spool row's size, to size fetches

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    @property
    def rejected(self) -> int:
        """PUBACKs that refused a spool row."""
        return self.holds.rejected

    def stats(self) -> dict[str, Any]:
        refused = self.holds.stats(time.monotonic(), MAX_REFUSALS_SHOWN)
        return {"state": self.state, "detail": self.detail, "detail_template": self.detail_template,
                "detail_params": self.detail_params, "connected_since": self.connected_since,
                "published": self.published, "rejected": self.rejected, "connects": self.connects,
                "refused_topics": refused, "set_aside": self.set_aside, "max_packet_bytes": self.max_packet_bytes,
                "spool_read_errors": self.read_errors}

    @property
    def max_packet_bytes(self) -> int | None:
        """The largest packet the broker takes: MQTT 5's CONNACK value and the configured one, the smaller."""
        limits = [x for x in (self._broker_max_packet, self.cfg.max_packet_bytes) if x]
        return min(limits) if limits else None

    @property
    def max_payload_bytes(self) -> int | None:
        """What a payload may take under max_packet_bytes on any of this agent's topics (drivers size to it)."""
        limit = self.max_packet_bytes
        if limit is None:
            return None
        return max(0, limit - publish_packet_bytes(self.topic("x" * TOPIC_SUFFIX_ALLOWANCE), 0,
                                                   self.cfg.mqtt_version == "5"))

    def _set_state(self, state: str, detail: str = "", **params: object) -> None:
        """`detail` is a template (English, the key the console translates by) filled with params."""
        plain = health_params(params)
        text = health_text(detail, plain)
        if (state, text) != (self.state, self.detail):
            self.state, self.detail = state, text
            self.detail_template, self.detail_params = detail, plain
            self.on_change()

    # -- connection ----------------------------------------------------------------------
    def _make_client(self, session: _Session) -> mqtt.Client:
        cfg = self.cfg
        v5 = cfg.mqtt_version == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id or f"commune-agent-{self.base}",
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, reconnect_on_failure=False,
                             clean_session=None if v5 else True)
        client.connect_timeout = SOCKET_TIMEOUT_S
        client.max_inflight_messages_set(100)  # measured: paho gets slower with larger windows
        client.max_queued_messages_set(0)
        client.will_set(self.topic("status"), to_json({"online": False, "boot_id": self.boot_id}), qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, read_secret(cfg.password_file))
        if cfg.tls is not None:
            client.tls_set(ca_certs=str(cfg.tls.ca_file),
                           certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                           keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        loop = session.loop

        def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any = None) -> None:
            limit = getattr(props, "MaximumPacketSize", None)
            session.max_packet = limit if isinstance(limit, int) and limit > 0 else None
            loop.call_soon_threadsafe(lambda: session.connack.done() or session.connack.set_result(rc))

        def on_disconnect(c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any = None) -> None:
            session.disconnect_reason = str(rc)
            loop.call_soon_threadsafe(session.closed.set)
            loop.call_soon_threadsafe(lambda: session.connack.done() or session.connack.set_result(rc))

        def on_publish(c: mqtt.Client, u: Any, mid: int, rc: ReasonCode, props: Any = None) -> None:
            session.pubacks.puback(mid, reason_text(rc))

        def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                topic = "invalid"
            loop.call_soon_threadsafe(self._message_arrived, topic, bytes(msg.payload), bool(msg.retain))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        return client

    async def run(self) -> None:
        """Connect, serve one session, back off, again — until cancelled."""
        backoff = Backoff(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, jitter=0.3)
        while not self._stopping:
            served = await self._connect_and_serve()
            if self._stopping:
                return
            if served:  # a session that failed at once (a packet the broker drops) must not retry at full speed
                backoff.reset()
            delay = backoff.next()
            self.log.info("uplink_retry", in_s=round(delay, 2), state=self.state, detail=self.detail)
            await asyncio.sleep(delay)

    async def _connect(self, client: mqtt.Client) -> None:
        """paho's blocking connect in a thread; if we are cancelled meanwhile, the client is closed once
        that connect returns, before anything else may connect with the same client id."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, client.connect, self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            closer = asyncio.ensure_future(self._close_orphan(client, fut))
            self._orphans.add(closer)
            closer.add_done_callback(self._orphans.discard)
            with contextlib.suppress(BaseException):
                await asyncio.wait({closer}, timeout=SOCKET_TIMEOUT_S + 1)
            raise

    async def _close_orphan(self, client: mqtt.Client, fut: asyncio.Future[Any]) -> None:
        with contextlib.suppress(BaseException):
            await fut
        await asyncio.to_thread(self._hang_up, client)
        self.log.info("uplink_connect_abandoned", host=self.cfg.host, port=self.cfg.port)

    @staticmethod
    def _hang_up(client: mqtt.Client) -> None:
        """Close a client whose network loop never ran: a clean DISCONNECT (no LWT), then the socket."""
        with contextlib.suppress(Exception):
            client.disconnect()
        with contextlib.suppress(Exception):
            client.loop(timeout=0.2)
        with contextlib.suppress(Exception):
            sock = client.socket()
            if sock is not None:
                sock.close()

    async def wait_orphans(self, timeout: float) -> None:
        """Let clients abandoned mid-connect finish closing (a new uplink must not race them)."""
        if self._orphans:
            await asyncio.wait(set(self._orphans), timeout=timeout)

    async def _connect_and_serve(self) -> bool:
        loop = asyncio.get_running_loop()
        session = _Session(loop)
        self._set_state("connecting", "{host}:{port}", host=self.cfg.host, port=self.cfg.port)
        try:
            client = self._make_client(session)
            await self._connect(client)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._set_state("disconnected", "connect failed: {error}", error=exc)
            self.log.warning("uplink_connect_failed", host=self.cfg.host, port=self.cfg.port, error=str(exc))
            return False
        if self._stopping:
            await asyncio.to_thread(self._hang_up, client)
            return False
        client.loop_start()
        try:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    rc = await asyncio.shield(session.connack)
            except TimeoutError:
                self._set_state("disconnected", "no CONNACK from broker")
                return False
            if session.closed.is_set() or (isinstance(rc, ReasonCode) and rc.is_failure):
                reason = str(rc)
                state = "auth_failed" if "authori" in reason.lower() or "password" in reason.lower() else "disconnected"
                self._set_state(state, "broker refused: {reason}", reason=reason)
                self.log.warning("uplink_refused", reason=reason)
                return False
            self._client, self._session = client, session
            self._broker_max_packet = session.max_packet
            self.connects += 1
            self.connected_since = time.time()
            began = time.monotonic()
            # MQTT 5 keeps the retain flag on live deliveries too: a retained command is never run, even one
            # published while connected (3.1.1 strips the flag then; an empty payload is refused either way)
            if self.cfg.mqtt_version == "5":
                client.subscribe(self.topic("cmd/+"), options=SubscribeOptions(qos=1, retainAsPublished=True))
            else:
                client.subscribe(self.topic("cmd/+"), qos=1)
            for topic in self._subscriptions:
                client.subscribe(topic, qos=1)
            self.publish_state("status", self.birth(), retain=True)
            self.publish_state("health", self.health(), retain=True)
            self._set_state("connected")
            self.log.info("uplink_connected", host=self.cfg.host, port=self.cfg.port, mqtt=self.cfg.mqtt_version)
            await self._drain(session)
            return session.delivered > 0 or time.monotonic() - began >= STABLE_SESSION_S
        finally:
            self._client = None
            self._session = None
            if client is not self._stopped_client:
                # also when stop() came during the connect: a half-open client must not log in later
                await self._end_client(client, HANG_UP_GRACE_S)
            if not self._stopping:
                if self.state == "connected":
                    self._set_state("disconnected", "connection lost: {reason}",
                                    reason=session.disconnect_reason or "-")
                    self.log.warning("uplink_lost", reason=session.disconnect_reason)
                self.connected_since = None

    async def _end_client(self, client: mqtt.Client, grace: float) -> None:
        """End paho's network thread without ever blocking the loop: a DISCONNECT if the link sends it within
        `grace`, else the socket is shut so the thread ends at once (unacknowledged rows stay in the spool).
        paho's own loop_stop() waits until every QoS1 message is acknowledged: minutes on a slow link."""
        with contextlib.suppress(Exception):
            client.disconnect()  # queued behind what paho still has to send
        stopper = asyncio.ensure_future(asyncio.to_thread(client.loop_stop))
        try:
            await asyncio.wait({stopper}, timeout=grace)
        finally:
            if not stopper.done():
                self._shut(client)
        if not stopper.done():
            await asyncio.wait({stopper}, timeout=SOCKET_TIMEOUT_S)
        if not stopper.done():
            self.log.warning("uplink_thread_lingers", host=self.cfg.host)

    @staticmethod
    def _shut(client: mqtt.Client) -> None:
        """Shut the connection under paho's thread: its select wakes, it sees the socket gone and ends.
        shutdown() of the plain socket only, so a TLS socket's state is never touched from this thread."""
        sock = client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    # -- publishing ----------------------------------------------------------------------
    def publish_state(self, suffix: str, payload: dict[str, Any], retain: bool = True) -> bool:
        """Fire-and-forget QoS1 publish of live state (status, health) while connected."""
        return self.publish_direct(suffix, to_json(payload), retain)

    def publish_direct(self, suffix: str, body: bytes, retain: bool = False) -> bool:
        """A QoS1 publish that bypasses the spool (state, or what the spool cannot take right now)."""
        client, session = self._client, self._session
        if client is None or session is None:
            return False
        limit = self.max_packet_bytes
        size = publish_packet_bytes(self.topic(suffix), len(body), self.cfg.mqtt_version == "5")
        if limit is not None and size > limit:  # the broker would drop the connection for it
            self.set_aside += 1
            self.log.warning("uplink_live_too_large", topic=suffix, bytes=size, max_packet_bytes=limit)
            return False
        info = client.publish(self.topic(suffix), body, qos=1, retain=retain)
        session.pubacks.ignore(info.mid)  # mids wrap at 65535: this PUBACK must never count for a spool row
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    async def _drain(self, session: _Session) -> None:
        """Publish spool rows in order; delete a row only after a successful PUBACK.

        A short pipeline: fetch → leave out held topics and what can never fit → publish → settle → delete.
        Two batches are kept in flight so the broker acknowledges one while the next is sent; together they
        carry about BATCH_TARGET_S of what the link delivers, so a slow link drains slowly instead of timing
        out. Rows of a refused topic stay in the spool and are retried with backoff, one batch at a time
        until the broker takes them again, so a retry never lets later rows of the topic overtake it."""
        self.spool.release_all()  # rows a cancelled session fetched but never sent
        client = self._client
        assert client is not None
        feed = _Feed(self.spool, self._fetch)
        inflight: deque[Batch[SpoolRow]] = deque()
        deletes: list[asyncio.Future[Any]] = []
        backlog = True  # health is refreshed once the backlog is gone, so the COC sees the drain finish
        try:
            while not session.closed.is_set():
                self.wakeup.clear()
                if self.holds.due(time.monotonic()) or self._rewind:
                    self._rewind = False
                    await feed.rewind()  # read again from the oldest; rows in flight are skipped by fetch
                fetched = await feed.next(self._window) if len(inflight) < 2 else []
                if fetched:
                    backlog = True
                    rows = await self._admit(fetched, inflight)
                    batch, unsent = self._publish(client, session.pubacks, rows)
                    inflight.append(batch)
                    if unsent:
                        feed.give_back(unsent)
                        break  # the connection is going: what was not sent goes again after reconnecting
                    feed.read_ahead()
                if inflight and (len(inflight) >= 2 or not fetched):
                    if not await self._settle(session, inflight.popleft(), deletes):
                        break  # reconnect and resend the rest, in order
                elif not fetched:
                    if backlog and not self._rewind:
                        backlog = False
                        self.on_change()
                    await self._idle(session)
        finally:
            for batch in inflight:
                self.spool.release(batch.items.values())
            feed.close()
            if deletes:
                await asyncio.gather(*deletes, return_exceptions=True)

    async def _idle(self, session: _Session) -> None:
        """Nothing to send: wait for new rows, a refused topic's retry, or the connection's end."""
        wait = min(1.0, max(0.05, self.holds.next_retry() - time.monotonic()))
        waiter = asyncio.ensure_future(self.wakeup.wait())
        closed = asyncio.ensure_future(session.closed.wait())
        await asyncio.wait({waiter, closed}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        closed.cancel()

    async def _admit(self, rows: list[SpoolRow], inflight: Iterable[Batch[SpoolRow]]) -> list[SpoolRow]:
        """The rows that may go now: a held topic's rows stay in the spool (read again once it is due or
        taken), and rows larger than the broker's maximum packet size are set aside."""
        if self.holds:
            rows, held = self.holds.split(rows, time.monotonic(),
                                          (row for batch in inflight for row in batch.items.values()))
            self.spool.release(held)
        limit = self.max_packet_bytes
        if limit is not None:
            v5 = self.cfg.mqtt_version == "5"
            slack = 4 * len(self.base) + PACKET_SLACK  # a cheap upper bound first; the exact size near the limit
            too_big = [(row, size) for row in rows
                       if len(row.payload) + 4 * (len(row.topic) + len(row.boot_id)) + slack > limit
                       and (size := publish_packet_bytes(self.topic(row.topic), len(self._payload(row)), v5)) > limit]
            if too_big:
                gone = {id(row) for row, _ in too_big}
                rows = [row for row in rows if id(row) not in gone]
                await self._set_aside(too_big, limit)
        return rows

    def _payload(self, row: SpoolRow) -> bytes:
        return with_envelope(row, self.boot_id) if row.seq is not None else row.payload

    def _publish(self, client: mqtt.Client, pubacks: PubackTracker[SpoolRow], rows: list[SpoolRow]
                 ) -> tuple[Batch[SpoolRow], list[SpoolRow]]:
        """Hand one batch to paho and track its PUBACKs; also returns the rows paho would not take (the
        connection is going)."""
        mids: dict[int, SpoolRow] = {}
        unsent: list[SpoolRow] = []
        base, boot_id, ok = self.base + "/", self.boot_id, mqtt.MQTT_ERR_SUCCESS
        for i, row in enumerate(rows):
            payload = with_envelope(row, boot_id) if row.seq is not None else row.payload
            info = client.publish(base + row.topic, payload, qos=1)
            if info.rc != ok:
                unsent = rows[i:]
                break
            mids[info.mid] = row
        return pubacks.track(mids, time.monotonic()), unsent

    async def _set_aside(self, rows: list[tuple[SpoolRow, int]], limit: int) -> None:
        """Rows larger than the broker's maximum packet size can never go (the broker would drop the connection
        for each): they leave the spool, are counted, and an event tells the COC what went, so the rest flows."""
        notices = [Record(f"event/{DROPPED_KIND}", to_json(event_dict(Event(
            DROPPED_KIND, {"topic": row.topic, "bytes": size, "max_packet_bytes": limit, "seq": row.seq,
                           "reason": "larger than the broker's maximum packet size"},
            severity="warning", source="uplink"))), Priority.EVENT)
            for row, size in rows if row.topic != f"event/{DROPPED_KIND}"]
        try:
            if notices:
                await self.spool.put(notices)
            await self.spool.delete([row for row, _ in rows])
        except (SpoolUnavailable, SpoolClosed) as exc:  # kept: looked at again once the spool writes
            self.spool.release([row for row, _ in rows])
            self.log.warning("uplink_set_aside_deferred", rows=len(rows), error=str(exc))
            return
        self.set_aside += len(rows)
        for row, size in rows:
            self.log.warning("uplink_set_aside", topic=row.topic, bytes=size, max_packet_bytes=limit,
                             reason="larger than the broker's maximum packet size")
        self.wakeup.set()  # the notices go next
        self.on_change()

    async def _fetch(self, cursor: Cursor) -> list[SpoolRow]:
        """The next rows, as many as the byte window holds at the rows' recent mean size."""
        limit = max(1, min(self.cfg.batch_size, int(self._window / self._row_bytes) + 1))
        try:
            rows = await asyncio.to_thread(self.spool.fetch, limit, cursor)
        except SpoolUnavailable:  # the spool is being repaired; its backlog comes once it reopens
            return []
        except sqlite3.DatabaseError as exc:
            await self._read_failed(exc, cursor.gen)
            return []
        if self._read_failing:
            self._read_failing = False
            self.log.info("uplink_spool_read_ok")
        if rows:
            self._row_bytes = (self._row_bytes + sum(r.size for r in rows) / len(rows)) / 2
        return rows

    async def _read_failed(self, exc: sqlite3.DatabaseError, gen: int) -> None:
        """A read met what no write did: a damaged page quarantines the file (its readable rows are salvaged
        into a fresh one and sent); any other error is retried on the next pass."""
        self.read_errors += 1
        if is_corruption(exc):
            self.log.error("uplink_spool_corrupt", error=describe(exc), gen=gen)
            try:
                await asyncio.to_thread(self.spool.quarantine_if_current, gen, describe(exc))
            except Exception as again:  # the spool reports its own state; the next pass reads again
                self.log.warning("uplink_spool_repair_failed", error=describe(again))
        elif not self._read_failing:
            self.log.warning("uplink_spool_read_failed", error=describe(exc))
        self._read_failing = True

    async def _settle(self, session: _Session, batch: Batch[SpoolRow], deletes: list[asyncio.Future[Any]]) -> bool:
        """Wait for one batch's PUBACKs; delete what was accepted, keep what was refused; False if any is missing.

        The wait ends when the batch is acknowledged, the connection closes, or no PUBACK came for a while
        (ACK_TIMEOUT_S, plus the time its largest row needs on the slowest link): a slow link that still
        acknowledges keeps its session."""
        patience = ACK_TIMEOUT_S + max((r.size for r in batch.items.values()), default=0) / SLOWEST_LINK_BYTES_S
        complete = await session.pubacks.wait(batch, patience, session.closed)
        done = batch.accepted()
        refused = batch.refused()
        missing = [] if complete else batch.unacknowledged()
        if missing and not session.closed.is_set():
            self.log.warning("uplink_ack_timeout", waiting=len(missing), quiet_s=round(patience))
        if complete:
            self._measure(sum(row.size for row in batch.items.values()), time.monotonic() - batch.sent)
        if self.holds:
            for row in done:
                if self.holds.accepted(row.topic):
                    self._rewind = True
                    self.on_change()
        if refused:
            now = time.monotonic()
            for row, reason in refused:
                self.holds.refused(row.topic, reason, now)
            self.on_change()
        self.spool.release([row for row, _ in refused] + missing)
        self.published += len(done)
        session.delivered += len(done)
        if done:
            deletes.append(asyncio.ensure_future(self._delete(done)))
            events = [(r.boot_id, r.seq, r.topic, self._payload(r)) for r in done if r.topic.startswith("event/")]
            if events and self.history is not None:
                deletes.append(asyncio.ensure_future(asyncio.to_thread(self.history.add, events)))
        deletes[:] = [d for d in deletes if not d.done()]
        return complete

    def _measure(self, nbytes: int, elapsed: float) -> None:
        """Size the next batches to what the link delivered: a batch that filled its window measures the link
        (a small one measures only the round trip)."""
        if nbytes < self._window / 2 or elapsed <= 0:
            return
        self._window = int(min(MAX_WINDOW_BYTES, max(MIN_WINDOW_BYTES, nbytes / elapsed * BATCH_TARGET_S)))

    async def _delete(self, rows: list[SpoolRow]) -> None:
        try:
            await self.spool.delete(rows)
        except (SpoolUnavailable, SpoolClosed) as exc:  # the spool deletes them once it writes again
            self.log.warning("uplink_delete_deferred", rows=len(rows), error=str(exc))

    # -- subscriptions besides commands -----------------------------------------------------
    def subscribe(self, topic: str, callback: Callable[[str, bytes, bool], None]) -> None:
        """Deliver messages on `topic` (a filter, absolute) to callback(topic, payload, retained) on the loop,
        from now and after every reconnect, until unsubscribe(topic); they never reach the command router."""
        self._subscriptions[topic] = callback
        if self._client is not None and self.connected:
            self._client.subscribe(topic, qos=1)

    def unsubscribe(self, topic: str) -> None:
        if self._subscriptions.pop(topic, None) is not None and self._client is not None and self.connected:
            self._client.unsubscribe(topic)

    def _message_arrived(self, topic: str, payload: bytes, retained: bool) -> None:
        for pattern, callback in list(self._subscriptions.items()):
            if topic == pattern or mqtt.topic_matches_sub(pattern, topic):
                try:
                    callback(topic, payload, retained)
                except Exception as exc:  # a subscriber's bug must not end the session
                    self.log.exception("subscriber_failed", exc, topic=topic[:200])
                return
        if topic.startswith(self.base + "/cmd/") or topic == "invalid":  # undecodable: the router counts it
            self._command_arrived(topic, payload, retained)
        else:
            self.unsolicited += 1

    def _command_arrived(self, topic: str, payload: bytes, retained: bool = False) -> None:
        name = topic.rsplit("/", 1)[-1]
        if retained:  # a retained command would run again on every reconnect
            self.router.counters["ignored_retained"] += 1
            self.log.warning("command_ignored", command=name[:64], reason="retained")
            return
        task = asyncio.ensure_future(self._run_command(name, payload))
        self._commands.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._commands.discard)

    async def _run_command(self, name: str, payload: bytes) -> None:
        """Route one command and send its result; nothing here may end with an unlogged exception."""
        try:
            result = await self.router.handle(name, payload)
            safe = name if 0 < len(name) <= 64 and not set(name) & set("/+#\0") and name.isprintable() else "invalid"
            body = to_json(result)
            try:
                await self.spool.put([Record(f"cmd/{safe}/result", body, Priority.ALARM, envelope=False)])
            except (SpoolUnavailable, SpoolClosed):
                self.publish_direct(f"cmd/{safe}/result", body)  # the spool cannot take it: send it live
            self.wakeup.set()
        except Exception as exc:
            self.log.exception("command_result_failed", exc, command=name[:64])

    async def stop(self, timeout: float = STOP_PUBLISH_S) -> None:
        """Announce a clean shutdown (retained offline status) and disconnect, within `timeout` seconds."""
        self._stopping = True
        client = self._client
        if client is None:
            return
        self._stopped_client = client
        try:
            info = client.publish(self.topic("status"),
                                  to_json({"online": False, "boot_id": self.boot_id, "reason": "shutdown"}),
                                  qos=1, retain=True)
            if self._session is not None:
                self._session.pubacks.ignore(info.mid)
            await asyncio.to_thread(info.wait_for_publish, timeout)
        except (RuntimeError, ValueError) as exc:
            self.log.warning("uplink_offline_status_failed", error=str(exc))
        await self._end_client(client, HANG_UP_GRACE_S)
        self._set_state("stopped")
