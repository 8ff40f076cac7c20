"""Loudspeakers end to end in a real agent: one unplugged shows down on the status page, in the retained health and
as a `speaker_down` event at the COC, and an airing to it is `unreachable` in the as-run log and the report; an
airing the amplifier's monitor does not hear raises `airing_silent` at the COC and shows on the status page."""

from __future__ import annotations

import json
import socket
from typing import Iterator

import pytest

from tests.broadcast.support import StatusApi
from tests.console.conftest import login
from tests.console.harness import OFFICIAL, ConsoleAgent
from tests.support.alsa import PacedSoundcard
from tests.support.mosquitto import Broker, Recorder
from tests.support.ports import free_port
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def api() -> Iterator[StatusApi]:
    a = StatusApi()
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacedSoundcard]:
    tmp = tmp_path_factory.mktemp("card")
    c = PacedSoundcard(tmp / "home", tmp / "aired.wav")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def radio(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder], api: StatusApi,
          card: PacedSoundcard) -> Iterator[ConsoleAgent]:
    broker, _ = coc
    zones = {"loa": {"type": "soundcard", "monitor": {"device": card.monitor}},
             "xom": {"type": "rtp", "group": "239.255.77.3", "port": free_port(socket.SOCK_DGRAM), "ttl": 0,
                     "interface": "127.0.0.1", "speakers": [{"name": "loa-cho", "status_url": api.url}]}}
    a = ConsoleAgent(tmp_path_factory.mktemp("radio"), broker.port, broker.password_file("agent"),
                     broadcast={"zones": zones, "speaker_checks": {"interval_s": 1, "timeout_s": 0.5,
                                                                   "down_after": 2}})
    a.proc.env["HOME"] = str(card.home)  # the sound card that plays in real time, with its monitor line-in
    a.add_users().start()
    try:
        yield a
    finally:
        a.stop()


def test_an_unplugged_speaker_shows_everywhere(radio: ConsoleAgent, coc: tuple[Broker, Recorder],
                                               api: StatusApi) -> None:
    broker, events = coc
    s = login(radio.url, OFFICIAL)

    def live() -> str:
        return s.get(radio.url + "/status/live", timeout=10).text

    wait_until(lambda: 'data-speaker="xom/loa-cho"' in (t := live()) and "hoạt động" in t, timeout=20,
               what="the speaker shown up")
    health = Recorder(broker.port, topics=("commune/v1/t1/health", "commune/v1/t1/cmd/broadcast/result")).start()
    try:
        api.stop()  # unplugged: its status API stops answering
        (down,) = wait_until(lambda: events.on("event/speaker_down"), timeout=15, what="speaker_down at the COC")
        assert down.json()["data"]["zone"] == "xom" and down.json()["data"]["zone_unreachable"] is True
        wait_until(lambda: any(m.json()["drivers"]["broadcast"]["state"] == "degraded"
                               and "zones unreachable: xom" in m.json()["drivers"]["broadcast"]["detail"]
                               for m in health.on("t1/health")), timeout=10, what="the health naming the zone")
        page = wait_until(lambda: "mất kết nối" in (t := live()) and t, timeout=10, what="the speaker shown down")
        assert "loa-cho" in page

        health.publish("commune/v1/t1/cmd/broadcast", json.dumps({
            "request_id": "p1", "action": "play-now", "bulletin": {
                "id": "loa-cho-mat", "title": "Thử loa chợ", "text": "Xin chào.", "zones": ["xom"],
                "chime": {"before": False}}}))
        (rec,) = wait_until(lambda: [m for m in events.on("event/asrun")
                                     if m.json()["data"]["bulletin_id"] == "loa-cho-mat"], timeout=20,
                            what="the as-run record")
    finally:
        health.stop()
    data = rec.json()["data"]
    assert data["outcome"] == "unreachable" and "loa-cho" in data["reason"] and data["started"] is None
    asrun = s.get(radio.url + "/asrun", timeout=10).text
    assert "oc-unreachable" in asrun and "loa không liên lạc được" in asrun
    report = s.get(radio.url + "/reports", timeout=10).text
    assert "loa không liên lạc được" in report


def test_an_airing_the_monitor_did_not_hear_is_an_alarm_at_the_coc_and_on_the_page(
        radio: ConsoleAgent, coc: tuple[Broker, Recorder], card: PacedSoundcard) -> None:
    broker, events = coc
    card.cable_cut.set()  # the amplifier is off: the monitor hears nothing
    rec = Recorder(broker.port, topics=("commune/v1/t1/cmd/broadcast/result",)).start()
    try:
        rec.publish("commune/v1/t1/cmd/broadcast", json.dumps({
            "request_id": "p2", "action": "play-now", "bulletin": {
                "id": "ampli-tat", "title": "Thử ampli", "text": "Xin chào.", "zones": ["loa"],
                "chime": {"before": False}}}))
        (alarm,) = wait_until(lambda: events.on("event/airing_silent"), timeout=20, what="airing_silent at the COC")
    finally:
        rec.stop()
        card.cable_cut.clear()
    body = alarm.json()
    assert body["severity"] == "critical" and body["data"]["zone"] == "loa" and body["data"]["level_dbfs"] < -90
    (asrun,) = [m.json()["data"] for m in events.on("event/asrun") if m.json()["data"]["bulletin_id"] == "ampli-tat"]
    assert asrun["outcome"] == "played" and asrun["heard"] == "no"
    assert asrun["ended"] - asrun["started"] > 0.5  # real air time on the paced sound card
    s = login(radio.url, OFFICIAL)
    wait_until(lambda: 'data-silent="loa"' in s.get(radio.url + "/status/live", timeout=10).text, timeout=5,
               what="the silent zone on the status page")
    assert "không (-120 dBFS)" in s.get(radio.url + "/asrun", timeout=10).text
