"""The console over HTTP against the real agent: access, CSRF, roles, throttling, hostile input, audit, exports."""

from __future__ import annotations

import csv
import io
import json
import time

import requests

from drivers.broadcast.store import DB_FILE, Store
from tests.console.conftest import bulletin_form, csrf_of, login, page_csrf, write_tone
from tests.console.harness import OFFICIAL, TECHNICIAN, ConsoleAgent, add_user
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until


def _store(agent: ConsoleAgent) -> Store:
    return Store(agent.data / "broadcast" / DB_FILE)


def _titles(agent: ConsoleAgent) -> list[str]:
    st = _store(agent)
    try:
        return [s.bulletin.title for s in st.all()]
    finally:
        st.close()


def test_nothing_but_login_and_static_without_a_session(agent: ConsoleAgent) -> None:
    for path in ("/", "/bulletins", "/calendar", "/asrun", "/asrun.csv", "/reports", "/status", "/status/live",
                 "/tech/config", "/emergency", "/bulletins/new", "/audio/x.wav", "/camera/a/latest.jpg"):
        r = requests.get(agent.url + path, allow_redirects=False, timeout=10)
        assert r.status_code == 303 and r.headers["Location"].startswith("/login"), (path, r.status_code)
    r = requests.post(agent.url + "/bulletins/new", data=bulletin_form(), allow_redirects=False, timeout=10)
    assert r.status_code == 401
    r = requests.post(agent.url + "/emergency", data={"title": "x", "text": "y", "zones": "loa", "step": "air",
                                                      "confirm": "yes"}, timeout=10)
    assert r.status_code == 401
    assert requests.get(agent.url + "/static/console.css", timeout=10).status_code == 200
    login_page = requests.get(agent.url + "/login", timeout=10)
    assert "Đăng nhập" in login_page.text and "Tên đăng nhập" in login_page.text
    assert "default-src 'self'" in login_page.headers["Content-Security-Policy"]


def test_session_cookie_is_httponly_and_samesite(agent: ConsoleAgent) -> None:
    s = requests.Session()
    page = s.get(agent.url + "/login", timeout=10)
    r = s.post(agent.url + "/login", data={"csrf": csrf_of(page.text), "username": OFFICIAL[0],
                                           "password": OFFICIAL[1]}, allow_redirects=False, timeout=20)
    cookie = r.headers["Set-Cookie"]
    assert "ca_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert s.get(agent.url + "/bulletins", timeout=10).status_code == 200
    s.post(agent.url + "/logout", data={"csrf": page_csrf(s, agent.url + "/bulletins")}, timeout=10)
    assert s.get(agent.url + "/bulletins", allow_redirects=False, timeout=10).status_code == 303


def test_forged_or_missing_csrf_is_refused_and_nothing_is_stored(agent: ConsoleAgent,
                                                                official: requests.Session) -> None:
    before = _titles(agent)
    for token in (None, "", "forged-token-123"):
        form = bulletin_form(title=f"giả mạo {token}")
        if token is not None:
            form["csrf"] = token
        r = official.post(agent.url + "/bulletins/new", data=form, allow_redirects=False, timeout=10)
        assert r.status_code == 403
        assert "Phiên làm việc không hợp lệ" in r.text
    # another session's token does not work either
    other = login(agent.url, TECHNICIAN)
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(title="giả mạo khác"),
                                                          "csrf": page_csrf(other, agent.url + "/bulletins")},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 403
    assert _titles(agent) == before
    # login itself needs its token
    r = requests.post(agent.url + "/login", data={"username": OFFICIAL[0], "password": OFFICIAL[1]},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 403


def test_official_cannot_open_technician_pages(agent: ConsoleAgent, official: requests.Session,
                                               technician: requests.Session) -> None:
    for path in ("/tech/status", "/tech/config", "/tech/doctor", "/tech/audit"):
        r = official.get(agent.url + path, allow_redirects=False, timeout=30)
        assert r.status_code == 403 and "không có quyền" in r.text, path
        assert technician.get(agent.url + path, timeout=30).status_code == 200, path
    cfg = technician.get(agent.url + "/tech/config", timeout=10).text
    assert "password_file" in cfg and "agent.secret" not in cfg and "••••••" in cfg
    assert "Kỹ thuật" not in official.get(agent.url + "/bulletins", timeout=10).text


def test_login_is_throttled_per_user(agent: ConsoleAgent) -> None:
    add_user(agent.config, "thu", "official", "mat-khau-thu-1")
    s = requests.Session()
    codes = []
    for _ in range(6):
        page = s.get(agent.url + "/login", timeout=10)
        r = s.post(agent.url + "/login", data={"csrf": csrf_of(page.text), "username": "thu", "password": "sai"},
                   allow_redirects=False, timeout=20)
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and codes[5] == 429, codes
    assert "Đăng nhập sai quá nhiều lần" in r.text
    page = s.get(agent.url + "/login", timeout=10)
    r = s.post(agent.url + "/login", data={"csrf": csrf_of(page.text), "username": "thu",
                                           "password": "mat-khau-thu-1"}, allow_redirects=False, timeout=20)
    assert r.status_code == 429  # even the right password waits
    login(agent.url, OFFICIAL)  # others in the same office still get in


def test_hostile_bulletin_input_is_refused_or_escaped(agent: ConsoleAgent, official: requests.Session) -> None:
    token = page_csrf(official, agent.url + "/bulletins/new")
    huge = "Thông báo. " * 3000
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(text=huge), "csrf": token}, timeout=20)
    assert r.status_code == 422
    assert 'id="err-text"' in r.text and "Quá dài" in r.text
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(title="x" * 300), "csrf": token},
                      timeout=20)
    assert r.status_code == 422 and 'id="err-title"' in r.text
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(zones="khong-co"), "csrf": token},
                      timeout=20)
    assert r.status_code == 422 and "Vùng loa không tồn tại" in r.text
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(title=evil, text=evil), "csrf": token},
                      allow_redirects=False, timeout=20)
    assert r.status_code == 303
    listing = official.get(agent.url + "/bulletins", timeout=10).text
    assert "<script>alert" not in listing and "<img src=x" not in listing
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in listing
    assert evil in _titles(agent)  # stored as the text it is; only pages escape it
    for path in ("/calendar", "/bulletins"):
        assert "<script>alert" not in official.get(agent.url + path, timeout=10).text


def test_upload_checks_type_size_and_content(agent: ConsoleAgent, official: requests.Session, tmp_path) -> None:
    token = page_csrf(official, agent.url + "/bulletins/new")
    form = {**bulletin_form(source="audio", text=""), "csrf": token}
    r = official.post(agent.url + "/bulletins/new", data=form,
                      files={"recording": ("virus.exe", b"MZ\x90\x00" * 100, "application/octet-stream")}, timeout=20)
    assert r.status_code == 422 and "Chỉ nhận tệp mp3, wav hoặc m4a" in r.text
    r = official.post(agent.url + "/bulletins/new", data=form,
                      files={"recording": ("fake.mp3", b"this is not audio at all" * 50, "audio/mpeg")}, timeout=20)
    assert r.status_code == 422 and "Không đọc được tệp âm thanh" in r.text
    r = official.post(agent.url + "/bulletins/new", data=form, timeout=20)
    assert r.status_code == 422 and "Hãy chọn tệp ghi âm" in r.text
    big = b"\0" * (21 * 1024 * 1024)
    r = official.post(agent.url + "/bulletins/new", data=form, files={"recording": ("big.wav", big, "audio/wav")},
                      timeout=60)
    assert r.status_code == 413 and "quá lớn" in r.text
    m4a = write_tone(tmp_path / "loa.m4a")
    r = official.post(agent.url + "/bulletins/new", data={**form, "title": "Bản ghi âm m4a"},
                      files={"recording": ("loa.m4a", m4a.read_bytes(), "audio/mp4")}, allow_redirects=False,
                      timeout=60)
    assert r.status_code == 303, r.text[:3000]
    st = _store(agent)
    try:
        b = next(s.bulletin for s in st.all() if s.bulletin.title == "Bản ghi âm m4a")
    finally:
        st.close()
    assert b.audio_file is not None and b.audio_file.suffix == ".wav" and b.audio_file.stat().st_size > 20000


def test_as_run_csv_report_and_audit_reach_the_coc(agent: ConsoleAgent, official: requests.Session,
                                                   coc: tuple[Broker, Recorder]) -> None:
    _, rec = coc
    token = page_csrf(official, agent.url + "/bulletins/new")
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(title="Kiểm tra CSV"), "csrf": token},
                      allow_redirects=False, timeout=20)
    assert r.status_code == 303
    st = _store(agent)
    try:
        bid = next(s.bulletin.id for s in st.all() if s.bulletin.title == "Kiểm tra CSV")
    finally:
        st.close()
    r = official.post(agent.url + f"/bulletins/{bid}/play", data={"csrf": token}, timeout=30)
    assert r.status_code == 200 and "Đang phát" in r.text

    def played() -> bool:
        return "Kiểm tra CSV" in official.get(agent.url + f"/asrun?bulletin={bid}&outcome=played", timeout=10).text

    wait_until(played, timeout=30, interval=0.3, what="as-run row")
    text = official.get(agent.url + f"/asrun.csv?bulletin={bid}", timeout=10).content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "Giờ hẹn" and any(r[2] == bid and r[6] == "đã phát" for r in rows[1:]), rows
    month = time.strftime("%m/%Y", time.localtime())
    rep = official.get(agent.url + f"/reports?month={month}", timeout=10).text
    assert "Kiểm tra CSV" in rep and "Phút phát" in rep
    bad = official.get(agent.url + "/asrun?from=31/02/2026", timeout=10).text
    assert "Ngày không hợp lệ" in bad

    def audited() -> list[dict]:
        out = []
        for m in rec.on("event/audit"):
            d = m.json()["data"]
            if d["user"] == OFFICIAL[0] and d["target"] == bid:
                out.append(d)
        return [d for d in out if d["action"] in ("bulletin_create", "bulletin_play_now")]

    got = wait_until(lambda: len(audited()) >= 2 and audited(), timeout=20, what="audit events at the COC")
    assert {d["action"] for d in got} == {"bulletin_create", "bulletin_play_now"}
    tech = login(agent.url, TECHNICIAN)
    trail = tech.get(agent.url + "/tech/audit", timeout=10).text
    assert "bulletin_play_now" in trail and bid in trail


def test_status_pages_show_the_health_document(agent: ConsoleAgent, official: requests.Session) -> None:
    def console_ok() -> bool:
        try:
            data = json.loads((agent.data / "status.json").read_text())
        except (OSError, ValueError):
            return False
        return data.get("drivers", {}).get("console", {}).get("state") == "ok"

    # the health document is rewritten on a change and every interval: wait for the one that has it
    wait_until(console_ok, timeout=40, interval=0.5, what="status.json with the console ok")
    live = official.get(agent.url + "/status/live", timeout=10).text
    assert "Trang quản lý" in live and "Loa truyền thanh" in live and "Sự kiện gần đây" in live


def test_english_is_selectable(agent: ConsoleAgent, official: requests.Session) -> None:
    token = page_csrf(official, agent.url + "/bulletins")
    r = official.post(agent.url + "/lang", data={"csrf": token, "to": "en", "next": "/bulletins"}, timeout=10)
    assert "Bulletins" in r.text and "Log out" in r.text
    r = official.post(agent.url + "/lang", data={"csrf": token, "to": "vi", "next": "//evil.example"},
                      allow_redirects=False, timeout=10)
    assert r.headers["Location"] == "/"
