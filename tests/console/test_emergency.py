"""The emergency's two steps are the server's: one POST cannot air, a confirmation covers exactly one content for
one session once, and an emergency never writes under another bulletin's id (nor does any inline play-now)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import requests

from drivers.broadcast.store import DB_FILE, Store
from tests.console.conftest import bulletin_form, login, page_csrf
from tests.console.harness import TECHNICIAN, ConsoleAgent
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

TEXT = "Khẩn cấp: nước lũ đang lên, bà con ven suối di chuyển lên chỗ cao."
STALE = "Xác nhận không còn hiệu lực"


def _asrun(agent: ConsoleAgent) -> list[dict[str, Any]]:
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        return st.asrun(1000)
    finally:
        st.close()


def _stored_id(agent: ConsoleAgent, title: str) -> str:
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        return next(s.bulletin.id for s in st.all() if s.bulletin.title == title)
    finally:
        st.close()


def _post(s: requests.Session, agent: ConsoleAgent, **form: Any) -> requests.Response:
    data = {"csrf": page_csrf(s, agent.url + "/emergency"), "text": TEXT, "zones": "loa", **form}
    return s.post(agent.url + "/emergency", data=data, allow_redirects=False, timeout=60)


def _confirmation(r: requests.Response) -> str:
    m = re.search(r'name="confirmation" value="([^"]+)"', r.text)
    assert r.status_code == 200 and m, r.text[:1000]
    return m.group(1)


def test_the_two_steps_are_enforced_by_the_server(agent: ConsoleAgent, official: requests.Session) -> None:
    n = time.monotonic_ns()
    forged = f"Giả khẩn cấp {n}"
    # one POST straight to the second step, as a script would send it: shown the confirmation again, not aired
    r = _post(official, agent, title=forged, step="air", confirm="yes")
    assert r.status_code == 422 and STALE in r.text
    # a confirmation covers exactly the content it was given for
    token = _confirmation(_post(official, agent, title=forged, step="confirm"))
    r = _post(official, agent, title=forged, text=TEXT + " Thêm câu khác.", step="air", confirm="yes",
              confirmation=token)
    assert r.status_code == 422 and STALE in r.text
    # and one session: another person's page cannot carry it
    other = login(agent.url, TECHNICIAN)
    token = _confirmation(_post(official, agent, title=forged, step="confirm"))
    r = _post(other, agent, title=forged, step="air", confirm="yes", confirmation=token)
    assert r.status_code == 422 and STALE in r.text
    # the real thing: write, confirm with the box ticked, aired; the same confirmation cannot air it twice
    real = f"Lũ quét {n}"
    token = _confirmation(_post(official, agent, title=real, step="confirm"))
    r = _post(official, agent, title=real, step="air", confirm="yes", confirmation=token)
    assert r.status_code == 200 and "Đang phát" in r.text, r.text[:1000]
    r = _post(official, agent, title=real, step="air", confirm="yes", confirmation=token)
    assert r.status_code == 422 and STALE in r.text
    wait_until(lambda: [x for x in _asrun(agent) if x["title"] == real and x["outcome"] == "played"], timeout=60,
               interval=0.3, what="the confirmed emergency aired")
    rows = _asrun(agent)
    assert not [x for x in rows if x["title"] == forged]  # aired in order: a forged airing would be there by now
    assert len([x for x in rows if x["title"] == real]) == 1


def test_an_emergency_never_writes_under_another_bulletins_id(agent: ConsoleAgent,
                                                              official: requests.Session) -> None:
    n = time.monotonic_ns()
    victim = f"Lịch tiêm phòng {n}"
    r = official.post(agent.url + "/bulletins/new",
                      data={**bulletin_form(title=victim), "csrf": page_csrf(official, agent.url + "/bulletins/new")},
                      allow_redirects=False, timeout=20)
    assert r.status_code == 303
    vid = _stored_id(agent, victim)
    fake = f"Tiêu đề giả {n}"
    token = _confirmation(_post(official, agent, title=fake, id=vid, step="confirm"))
    r = _post(official, agent, title=fake, id=vid, step="air", confirm="yes", confirmation=token)
    assert r.status_code == 200
    got = wait_until(lambda: [x for x in _asrun(agent) if x["title"] == fake and x["outcome"] == "played"],
                     timeout=60, interval=0.3, what="the emergency aired")
    assert got[0]["bulletin_id"] != vid and got[0]["bulletin_id"].startswith("khan-cap-")
    assert not [x for x in _asrun(agent) if x["bulletin_id"] == vid]


def test_an_inline_play_now_cannot_take_a_stored_bulletins_id(agent: ConsoleAgent, official: requests.Session,
                                                              coc: tuple[Broker, Recorder]) -> None:
    broker, _ = coc
    title = f"Họp tổ dân phố {time.monotonic_ns()}"
    r = official.post(agent.url + "/bulletins/new",
                      data={**bulletin_form(title=title), "csrf": page_csrf(official, agent.url + "/bulletins/new")},
                      allow_redirects=False, timeout=20)
    assert r.status_code == 303
    bid = _stored_id(agent, title)
    rec = Recorder(broker.port, topics=("commune/v1/t1/cmd/broadcast/result", "commune/v1/t1/status")).start()
    try:
        wait_until(lambda: any(m.json().get("online") for m in rec.on("t1/status")), timeout=20,
                   what="the agent online at the COC")
        rec.publish("commune/v1/t1/cmd/broadcast", json.dumps({
            "request_id": "inline-1", "action": "play-now",
            "bulletin": {"id": bid, "title": "Giả", "text": "Xin chào."}}))
        res = wait_until(lambda: [m.json() for m in rec.on("cmd/broadcast/result")
                                  if m.json().get("request_id") == "inline-1"], timeout=10, what="the result")
    finally:
        rec.stop()
    assert res[0]["ok"] is False and "exists" in res[0]["error"], res
