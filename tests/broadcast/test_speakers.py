"""Loudspeakers that answer: ICMP, the HTTP status API and SIP OPTIONS on the real wire, and a zone whose speaker
went silent recorded as unreachable, not played."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from agent.fleet.live import render_live
from drivers.broadcast.probes import http_status, ping, sip_ping
from drivers.broadcast.store import DB_FILE, Store
from tests.broadcast.harness import asruns, config, running
from tests.broadcast.support import SipPeer, StatusApi
from tests.network.netlab import Lab
from tests.support.netns import run_in_netns
from tests.support.ports import free_port
from tests.support.wait import async_wait_until


@pytest.fixture
def sip() -> Iterator[SipPeer]:
    peer = SipPeer()
    try:
        yield peer
    finally:
        peer.stop()


def test_sip_options_is_answered_retransmitted_and_timed_out(sip: SipPeer) -> None:
    assert asyncio.run(sip_ping(f"sip:loa-cho@127.0.0.1:{sip.port}", 2.0)) is None
    assert sip.malformed == [] and len(sip.requests) == 1
    assert sip.requests[0]["uri"] == f"sip:loa-cho@127.0.0.1:{sip.port}"

    sip.answer = False  # registered once, now dead: timer E retransmits the same request, then it gives up
    began = time.monotonic()
    error = asyncio.run(sip_ping(f"127.0.0.1:{sip.port}", 1.2))
    assert error == "sip: no answer to OPTIONS in 1.2 s" and 1.1 < time.monotonic() - began < 2.0
    again = sip.requests[1:]
    assert len(again) == 2 and again[0]["call-id"] == again[1]["call-id"] and again[0]["via"] == again[1]["via"]
    assert sip.malformed == []

    closed = free_port(socket.SOCK_DGRAM)
    assert asyncio.run(sip_ping(f"127.0.0.1:{closed}", 1.0)) == "sip: port closed (nothing listens for SIP)"


def test_http_status_api_and_ping() -> None:
    api = StatusApi(200)
    try:
        assert asyncio.run(http_status(api.url, 1.0)) is None and api.hits == 1
        api.status = 503
        assert asyncio.run(http_status(api.url, 1.0)) == "http: status API answered 503"
    finally:
        api.stop()
    gone = asyncio.run(http_status(f"http://127.0.0.1:{free_port()}/status", 1.0))
    assert gone is not None and gone.startswith("http: ")
    assert asyncio.run(ping("127.0.0.1", 1.0)) is None
    assert asyncio.run(ping("127.0.0.1", 1.0)) is None  # again: no socket left behind, no state between probes


@pytest.fixture
def lab() -> Iterator[tuple[Lab, str, str]]:
    """The agent's namespace and a speaker's, joined by a veth: 10.77.0.1 (agent) - 10.77.0.2 (speaker)."""
    lab = Lab("spk")
    try:
        agent, spk = lab.ns("ag"), lab.ns("sp")
        lab.veth(agent, "lan0", "10.77.0.1/24", spk, "eth0", "10.77.0.2/24")
        # unprivileged ping sockets allowed, as systemd's sysctl defaults do: the path the probe tries first (the
        # loopback test above takes whichever path the host allows; here, with ping_group_range "1 0", raw)
        lab.exec(agent, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        yield lab, agent, spk
    finally:
        lab.close()


def test_an_rtp_speaker_gone_silent_makes_its_zone_unreachable(tmp_path: Path, lab: tuple[Lab, str, str]) -> None:
    net, agent_ns, speaker_ns = lab
    cfg = config(tmp_path, {"loa": {"type": "rtp", "group": "239.255.77.1", "port": 5004, "ttl": 0,
                                    "interface": "127.0.0.1",
                                    "speakers": [{"name": "loa-cong-xa", "host": "10.77.0.2"}]}},
                 speaker_checks={"interval_s": 1, "timeout_s": 0.5, "down_after": 2})
    data = tmp_path / "data"

    async def scenario() -> None:
        async with running(cfg, data) as ctx:
            await async_wait_until(lambda: any(e.kind == "speaker_down" for e in ctx.events) or (
                _speakers(data).get("loa", [{}])[0].get("up") is True), timeout=10, what="the speaker answering")
            assert ctx.state == "ok" and not ctx.events_of("speaker_down")

            net.ip(speaker_ns, "link", "set", "eth0", "down")  # unplugged: its address goes silent
            await async_wait_until(lambda: ctx.events_of("speaker_down"), timeout=10, what="speaker_down")
            (down,) = ctx.events_of("speaker_down")
            assert down.data["zone"] == "loa" and down.data["speaker"] == "loa-cong-xa"
            assert down.data["zone_unreachable"] is True and down.data["error"].startswith("ping: ")
            assert ctx.state == "degraded" and "zones unreachable: loa" in ctx.states[-1][1]
            await async_wait_until(lambda: _speakers(data)["loa"][0]["up"] is False, timeout=2, what="state.json")
            read = await ctx.commands["bulletins"]({})  # what the COC reads of the zone, and `fleet show` prints
            zones = read["zones"]
            assert zones["loa"]["speakers"][0]["up"] is False and "loa-cong-xa" in zones["loa"]["unreachable"]
            assert "speakers 0/1 up DOWN: loa-cong-xa" in "\n".join(render_live({"bulletins": {"ok": True, **read}}))

            seen = len(asruns(ctx))
            await ctx.commands["broadcast"]({"action": "play-now", "bulletin": {
                "id": "loa-mat", "title": "Thông báo", "text": "Xin chào bà con.", "chime": {"before": False}}})
            await async_wait_until(lambda: len(asruns(ctx)) > seen, timeout=15, what="as-run")
            rec = asruns(ctx)[-1]
            assert rec["outcome"] == "unreachable" and "loa-cong-xa" in rec["reason"], rec
            assert rec["started"] is None and ctx.counters["airing_unreachable"] == 1

            net.ip(speaker_ns, "link", "set", "eth0", "up")  # plugged back in
            await async_wait_until(lambda: ctx.events_of("speaker_up"), timeout=10, what="speaker_up")
            assert ctx.state == "ok"

    run_in_netns(agent_ns, lambda: asyncio.run(scenario()))
    store = Store(data / DB_FILE)
    try:
        _, rows = store.asrun_find(bulletin_id="loa-mat")
    finally:
        store.close()
    assert [r["outcome"] for r in rows] == ["unreachable"]


def _speakers(data: Path) -> dict:
    try:
        return json.loads((data / "state.json").read_text()).get("speakers", {})
    except (OSError, ValueError):
        return {}


def test_speakers_are_checked_again_right_before_an_airing(tmp_path: Path) -> None:
    api = StatusApi()
    cfg = config(tmp_path, {"loa": {"type": "rtp", "group": "239.255.77.2", "port": free_port(socket.SOCK_DGRAM),
                                    "ttl": 0, "interface": "127.0.0.1",
                                    "speakers": [{"name": "loa-dinh", "status_url": api.url}]}},
                 speaker_checks={"interval_s": 3600, "timeout_s": 0.5, "down_after": 1})

    async def scenario() -> dict:
        async with running(cfg, tmp_path / "data") as ctx:
            await async_wait_until(lambda: api.hits == 1, timeout=10, what="the first scheduled check")
            api.stop()  # gone long before the next scheduled check, an hour away
            await ctx.commands["broadcast"]({"action": "play-now", "bulletin": {
                "id": "truoc-gio", "title": "Thông báo", "text": "Xin chào.", "chime": {"before": False}}})
            await async_wait_until(lambda: asruns(ctx), timeout=15, what="as-run")
            assert [e.data["speaker"] for e in ctx.events_of("speaker_down")] == ["loa-dinh"]
            return asruns(ctx)[-1]

    try:
        rec = asyncio.run(scenario())
    finally:
        api.stop()
    assert rec["outcome"] == "unreachable" and "loa-dinh (http: " in rec["reason"], rec
