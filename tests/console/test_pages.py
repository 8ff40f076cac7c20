"""Editing and cancelling through the console, what the status page shows, HTTPS, and config completeness."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel

from drivers.broadcast.config import BroadcastConfig
from drivers.broadcast.store import DB_FILE, Store
from drivers.console.config import ConsoleConfig
from tests.console.conftest import bulletin_form, csrf_of, page_csrf
from tests.console.harness import OFFICIAL, ConsoleAgent
from tests.support.agentproc import ROOT
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until


def _stored(agent: ConsoleAgent, title: str) -> Any:
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        return next((s for s in st.all(include_cancelled=True) if s.bulletin.title == title), None)
    finally:
        st.close()


def test_edit_and_cancel_go_through_the_broadcast_command(agent: ConsoleAgent, official: requests.Session) -> None:
    token = page_csrf(official, agent.url + "/bulletins/new")
    title = f"Tiêm phòng {time.monotonic_ns()}"
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(title=title, sched="weekdays", wd=["1", "3"],
                                                                          times="07:00", end_date="31/12/2099"),
                                                          "csrf": token}, allow_redirects=False, timeout=20)
    assert r.status_code == 303
    s = _stored(agent, title)
    assert s.source == f"console:{OFFICIAL[0]}" and s.bulletin.schedule.weekdays == [1, 3]
    form = official.get(agent.url + f"/bulletins/{s.bulletin.id}/edit", timeout=10).text
    assert 'value="07:00"' in form and 'value="31/12/2099"' in form
    r = official.post(agent.url + f"/bulletins/{s.bulletin.id}/edit",
                      data={**bulletin_form(title=title, sched="daily", times="18:15", priority="high"),
                            "csrf": csrf_of(form)}, allow_redirects=False, timeout=20)
    assert r.status_code == 303
    s2 = _stored(agent, title)
    assert s2.bulletin.id == s.bulletin.id and s2.bulletin.priority == "high"
    assert [t.strftime("%H:%M") for t in s2.bulletin.schedule.times] == ["18:15"]
    listing = official.get(agent.url + "/bulletins", timeout=10).text
    assert "ưu tiên" in listing and "18:15" in listing
    r = official.post(agent.url + f"/bulletins/{s.bulletin.id}/cancel", data={"csrf": token}, allow_redirects=False,
                      timeout=20)
    assert r.status_code == 303
    assert _stored(agent, title).status == "cancelled"
    assert official.get(agent.url + f"/bulletins/{s.bulletin.id}/edit", timeout=10).status_code == 404


def test_status_shows_cameras_snapshots_and_events(agent: ConsoleAgent, official: requests.Session,
                                                   coc: tuple[Broker, Recorder]) -> None:
    cams = agent.data / "cameras"
    (cams / "snapshots" / "cong").mkdir(parents=True, exist_ok=True)
    jpeg = b"\xff\xd8\xff\xe0" + b"0" * 500 + b"\xff\xd9"
    (cams / "snapshots" / "cong" / f"{time.time_ns():020d}_ev123.jpg").write_bytes(jpeg)
    (cams / "state.json").write_text(json.dumps({"ts": time.time(), "cameras": {
        "cong": {"online": True, "problem": ""}, "sau-nha": {"online": False, "problem": "stream: timeout"}}}))
    live = official.get(agent.url + "/status/live", timeout=10).text
    assert "cong" in live and "trực tuyến" in live and "mất kết nối" in live and "stream: timeout" in live
    r = official.get(agent.url + "/camera/cong/latest.jpg", timeout=10)
    assert r.status_code == 200 and r.content == jpeg and r.headers["Content-Type"] == "image/jpeg"
    assert official.get(agent.url + "/camera/cong/event/ev123.jpg", timeout=10).content == jpeg
    for bad in ("/camera/..%2F..%2Fetc/latest.jpg", "/camera/cong/event/..%2Fx.jpg", "/camera/none/latest.jpg"):
        assert official.get(agent.url + bad, timeout=10).status_code == 404, bad
    # events the agent emits show in the feed: the console's own audit events are one kind
    wait_until(lambda: "audit" in official.get(agent.url + "/status/live", timeout=10).text, timeout=10,
               what="the events feed")
    # the uplink's state reads in Vietnamese too, never the raw word the agent logs
    live = wait_until(lambda: (t := official.get(agent.url + "/status/live", timeout=10).text) and
                      "đã kết nối" in t and t, timeout=20, what="the uplink shown as connected")
    assert ">connected<" not in live


def test_https_with_a_certificate(tmp_path: Path, coc: tuple[Broker, Recorder]) -> None:
    broker, _ = coc
    key, crt = tmp_path / "console.key", tmp_path / "console.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ubnd",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)], check=True,
                   capture_output=True)
    a = ConsoleAgent(tmp_path, broker.port, broker.password_file("agent"),
                     console={"tls_cert_file": str(crt), "tls_key_file": str(key)}, site_id="t-https").add_users()
    a.url = a.url.replace("http://", "https://")
    a.proc.start()
    try:
        def up() -> bool:
            try:
                return requests.get(a.url + "/login", verify=str(crt), timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, timeout=30, interval=0.2, what="console over HTTPS")
        s = requests.Session()
        page = s.get(a.url + "/login", verify=str(crt), timeout=10)
        r = s.post(a.url + "/login", data={"csrf": csrf_of(page.text), "username": OFFICIAL[0],
                                           "password": OFFICIAL[1]}, allow_redirects=False, verify=str(crt),
                   timeout=20)
        assert r.status_code == 303 and "Secure" in r.headers["Set-Cookie"]
        try:
            requests.get(a.url.replace("https://", "http://") + "/login", timeout=5)
            plain_answered = True
        except requests.RequestException:
            plain_answered = False
        assert not plain_answered  # no plain-HTTP page on the TLS port
    finally:
        a.stop()


def _undocumented(model: type[BaseModel], where: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        if not field.description:
            out.append(f"{where}.{name}")
        for arg in getattr(field.annotation, "__args__", ()) + (field.annotation,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += _undocumented(arg, f"{where}.{name}")
    return out


def test_every_console_and_broadcast_config_field_is_described() -> None:
    from drivers.broadcast.config import HttpZone, RtpZone, SoundcardZone

    missing = _undocumented(ConsoleConfig, "console") + _undocumented(BroadcastConfig, "broadcast")
    for zone in (SoundcardZone, RtpZone, HttpZone):
        missing += _undocumented(zone, f"broadcast.zones.{zone.__name__}")
    assert not missing, missing


def test_a_coc_command_cannot_claim_to_come_from_the_console(agent: ConsoleAgent,
                                                            coc: tuple[Broker, Recorder]) -> None:
    broker, _ = coc
    body = {"request_id": "spoof-1", "action": "create", "source": "console:canbo",
            "bulletin": {"id": "tu-coc", "title": "Từ trung tâm", "text": "Xin chào.",
                         "schedule": {"times": ["06:00"]}}}
    rec = Recorder(broker.port, topics=("commune/v1/t1/cmd/broadcast/result", "commune/v1/t1/status")).start()
    try:
        # a command sent before the agent has subscribed is gone (clean MQTT session): wait for its birth, which
        # it publishes after its SUBSCRIBE on the same connection
        wait_until(lambda: any(m.json().get("online") for m in rec.on("t1/status")), timeout=20,
                   what="the agent online at the COC")
        rec.publish("commune/v1/t1/cmd/broadcast", json.dumps(body))
        wait_until(lambda: any(m.json().get("request_id") == "spoof-1" for m in rec.on("cmd/broadcast/result")),
                   timeout=10, what="the command result")
    finally:
        rec.stop()
    assert _stored(agent, "Từ trung tâm").source == "coc"


def test_a_removed_account_is_logged_out_at_its_next_request(agent: ConsoleAgent) -> None:
    from tests.console.conftest import login
    from tests.console.harness import add_user

    add_user(agent.config, "tamthoi", "official", "mat-khau-tam-thoi")
    s = login(agent.url, ("tamthoi", "mat-khau-tam-thoi"))
    assert s.get(agent.url + "/bulletins", allow_redirects=False, timeout=10).status_code == 200
    res = subprocess.run([sys.executable, "-m", "agent.cli", "--config", str(agent.config), "user", "remove",
                          "tamthoi"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, check=True)
    assert "removed" in res.stdout
    r = s.get(agent.url + "/bulletins", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")


def test_a_taken_port_is_retried_until_it_is_free(tmp_path: Path, coc: tuple[Broker, Recorder]) -> None:
    broker, _ = coc
    a = ConsoleAgent(tmp_path, broker.port, broker.password_file("agent"), site_id="t-port")
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", a.port))
    holder.listen(1)
    a.proc.start()
    try:
        def console_state() -> dict[str, Any] | None:
            try:
                return json.loads((a.data / "status.json").read_text())["drivers"]["console"]
            except (OSError, ValueError, KeyError):
                return None

        wait_until(lambda: "console_crashed" in a.proc.log_text() or "driver_crashed" in a.proc.log_text(),
                   timeout=30, what="the console failing on the taken port")
        assert a.proc.proc is not None and a.proc.proc.poll() is None  # the agent itself keeps running
        holder.close()
        wait_until(a._up, timeout=90, interval=0.3, what="the console once the port is free")
        wait_until(lambda: (console_state() or {}).get("state") == "ok", timeout=60, what="console health ok")
        assert console_state()["restarts"] >= 1
    finally:
        holder.close()
        a.stop()
