"""Signboards on the real agent (mosquitto, broadcast on RTP over loopback, console, signboard) with two screen
boards in a real Chromium and a Huidu card simulator: the page at 1920x1080 and 192x64 with nothing overflowing,
a notice and the leaders' schedule from the console, an emergency airing on every board within a second of its
start and gone at its end, the page updating across an agent restart, and a wrong secret answered 404."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from drivers.signboard.api import board_urls
from tests.console.harness import OFFICIAL, ConsoleAgent, log_in
from tests.signboard.huidu_sim import Card
from tests.support.mosquitto import Broker, Recorder
from tests.support.ports import free_port
from tests.support.wait import wait_until

NOTICE = "Họp dân thôn Đông lúc 19 giờ thứ Sáu tại nhà văn hoá: bàn việc làm đường bê tông, mời đại diện mỗi hộ."
EMERGENCY = "Khẩn cấp: lũ đang lên, bà con lên chỗ cao."
# every element of the board inside its box and the window: what the officials would see cut off
OVERFLOW_JS = """() => {
  const bad = [];
  for (const e of document.querySelectorAll('#board, #board *')) {
    const r = e.getBoundingClientRect();
    if (e.clientWidth && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1))
      bad.push(e.id || e.className || e.tagName);
    if (r.width && (r.right > innerWidth + 1 || r.bottom > innerHeight + 1))
      bad.push('outside:' + (e.id || e.className));
  }
  return bad;
}"""


@pytest.fixture(scope="module")
def card() -> Iterator[Card]:
    c = Card().start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder], card: Card) -> Iterator[ConsoleAgent]:
    broker, _ = coc
    board_port = free_port()
    tmp = tmp_path_factory.mktemp("agent")
    schedule = tmp / "lich.csv"
    schedule.write_text("day,time,what,who,where\nThứ Hai,07:30,Họp giao ban,Chủ tịch UBND xã,Hội trường\n",
                        encoding="utf-8")
    signboard = {"listen": "127.0.0.1", "port": board_port, "rotate_s": 60, "schedule_file": str(schedule),
                 "boards": {"cong": {"type": "screen", "label": "Cổng UBND"}, "nvh": {"type": "screen"},
                            "cho": {"type": "huidu", "host": "127.0.0.1", "port": card.port, "timeout_s": 2,
                                    "reconnect_max_s": 1}}}
    a = ConsoleAgent(tmp, broker.port, broker.password_file("agent"),
                     extra={"signboard": signboard}).add_users().start()
    a.board_port = board_port  # type: ignore[attr-defined]
    try:
        wait_until(lambda: len(board_urls(a.data, "127.0.0.1", board_port)) == 2, timeout=20,
                   what="the boards' addresses")
        yield a
    finally:
        a.stop()


@pytest.fixture(scope="module")
def urls(agent: ConsoleAgent) -> dict[str, str]:
    return board_urls(agent.data, "127.0.0.1", agent.board_port)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def coc_client(agent: ConsoleAgent, coc: tuple[Broker, Recorder]) -> Iterator[Recorder]:
    broker, _ = coc
    rec = Recorder(broker.port, topics=("commune/v1/t1/cmd/+/result", "commune/v1/t1/status",
                                        "commune/v1/t1/event/asrun", "commune/v1/t1/event/on_air")).start()
    wait_until(lambda: any(m.json().get("online") for m in rec.on("t1/status")), timeout=20,
               what="the agent online at the COC")
    try:
        yield rec
    finally:
        rec.stop()


def command(rec: Recorder, name: str, body: dict[str, Any]) -> dict[str, Any]:
    rid = f"{name}-{time.monotonic_ns()}"
    rec.publish(f"commune/v1/t1/cmd/{name}", json.dumps({"request_id": rid, **body}))
    found = wait_until(lambda: [m.json() for m in rec.on(f"cmd/{name}/result") if m.json().get("request_id") == rid],
                       timeout=20, what=f"the {name} result")
    return found[0]


def board_page(browser: Browser, url: str, width: int, height: int) -> Page:
    page = browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN").new_page()
    page.goto(url)
    return page


def test_board_page_full_hd_and_small_led_with_the_vietnamese_notice_and_nothing_overflowing(
        browser: Browser, agent: ConsoleAgent, urls: dict[str, str], coc_client: Recorder, card: Card,
        tmp_path: Path) -> None:
    res = command(coc_client, "signboard", {"action": "show", "id": "hop-dan", "title": "Thông báo họp dân",
                                            "text": NOTICE})
    assert res["ok"] is True, res
    for w, h in ((1920, 1080), (192, 64)):
        page = board_page(browser, urls["cong"], w, h)
        expect(page.locator("#board")).to_have_attribute("data-page", "n:hop-dan")
        expect(page.locator("#page .body")).to_have_text(NOTICE)
        expect(page.locator("#page .head")).to_have_text("Thông báo họp dân")
        assert page.evaluate(OVERFLOW_JS) == []
        size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('#page .body')).fontSize)")
        assert size >= (40 if w == 1920 else 4), size  # large text where there is room
        shot = tmp_path / f"board-{w}x{h}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 1000
        shutil.copy(shot, agent.tmp / shot.name)
        page.context.close()
    wait_until(lambda: NOTICE.encode() in (card.last("AddProgram") or b""), timeout=10,
               what="the notice on the LED card")
    # a bulletin's text put up as it is stored; a bulletin that is not there is refused by name
    made = command(coc_client, "broadcast", {"action": "create", "bulletin": {
        "id": "tiem-phong", "title": "Tiêm phòng", "text": "Tiêm phòng gia súc ngày 20/12 tại thôn Tây.",
        "schedule": {"at": "2099-12-20T07:00:00"}, "zones": ["loa"]}})
    assert made["ok"] is True, made
    shown = command(coc_client, "signboard", {"action": "show", "bulletin": "tiem-phong", "boards": ["nvh"]})
    assert shown == {**shown, "ok": True, "id": "bulletin-tiem-phong", "boards": ["nvh"]}, shown
    assert command(coc_client, "signboard", {"action": "show", "bulletin": "khong-co"})["error"] == \
        "bulletin: no active bulletin 'khong-co'"
    state = json.loads((agent.data / "signboard" / "state.json").read_text())
    assert [n["text"] for n in state["notices"] if n["id"] == "bulletin-tiem-phong"] == [
        "Tiêm phòng gia súc ngày 20/12 tại thôn Tây."]
    # the schedule file was loaded at start, and its line is on the card
    assert "Thứ Hai\n07:30 Họp giao ban (Chủ tịch UBND xã)".encode() in (card.last("AddProgram") or b"")
    assert json.loads((agent.data / "signboard" / "state.json").read_text())["schedule_by"].startswith("file:")


def test_console_notice_and_schedule_reach_the_boards(browser: Browser, agent: ConsoleAgent,
                                                      urls: dict[str, str], card: Card) -> None:
    board = board_page(browser, urls["nvh"], 1280, 720)
    expect(board.locator("#board")).not_to_have_attribute("data-version", "0")
    ctx = browser.new_context(base_url=agent.url, locale="vi-VN")
    page = ctx.new_page()
    page.goto("/login")
    log_in(page, OFFICIAL)
    page.click("text=Bảng tin điện tử")
    page.fill("#sb-title", "Tiêm phòng")
    page.fill("#sb-text", "Tiêm phòng dại cho chó mèo sáng Chủ Nhật tại trạm y tế xã.")
    page.check("input[name=boards][value=nvh]")
    page.click("#sb-show")
    page.wait_for_url("**/signboard?done=shown")
    # how fast is the signboard benchmark's board_update_s; here: it arrives without a reload
    expect(board.locator("#page .body")).to_have_text("Tiêm phòng dại cho chó mèo sáng Chủ Nhật tại trạm y tế xã.",
                                                      timeout=15000)
    # a bad line is named in Vietnamese and nothing is saved; the fixed week reaches the boards
    rows = page.locator("#sb-schedule tbody tr")
    rows.nth(0).locator("select[name=day]").select_option("2")
    rows.nth(0).locator("input[name=time]").fill("25:00")
    rows.nth(0).locator("input[name=what]").fill("Họp giao ban")
    page.click("#sb-save-schedule")
    expect(page.locator("#err-schedule")).to_have_text("Dòng 1, Giờ: giờ phải viết dạng 07:30")
    rows.nth(0).locator("input[name=time]").fill("7:30")
    rows.nth(0).locator("input[name=who]").fill("Chủ tịch UBND xã")
    rows.nth(1).locator("select[name=day]").select_option("2")
    rows.nth(1).locator("input[name=time]").fill("14:00")
    rows.nth(1).locator("input[name=what]").fill("Tiếp công dân")
    rows.nth(1).locator("input[name=where]").fill("Phòng tiếp dân")
    page.click("#sb-save-schedule")
    page.wait_for_url("**/signboard?done=schedule")
    expect(page.locator("#sb-schedule tbody tr").nth(0).locator("input[name=time]")).to_have_value("07:30")
    # the console's notice last among whatever the module's other tests put up, then Tuesday's schedule, the clock
    nid = _notice_id(agent, "Tiêm phòng", by="console:canbo")
    expect(board.locator("#board")).to_have_attribute("data-pages", re.compile(rf"(^|,)n:{nid},s:2,clock$"))
    wait_until(lambda: "Thứ Ba\n07:30 Họp giao ban (Chủ tịch UBND xã)\n14:00 Tiếp công dân".encode()
               in (card.last("AddProgram") or b""), timeout=10, what="the schedule on the LED card")
    ctx.close()
    board.context.close()


def _notice_id(agent: ConsoleAgent, title: str, by: str) -> str:
    doc = json.loads((agent.data / "signboard" / "state.json").read_text())
    return next(n["id"] for n in doc["notices"] if n["title"] == title and n["by"] == by)


def test_emergency_on_every_board_within_a_second_of_its_start_and_gone_at_its_end(
        browser: Browser, agent: ConsoleAgent, urls: dict[str, str], coc_client: Recorder, card: Card) -> None:
    pages = [board_page(browser, urls[b], 640, 360) for b in ("cong", "nvh")]
    for p in pages:
        expect(p.locator("#board")).not_to_have_attribute("data-version", "0")
    sent_before = len(card.commands)
    res = command(coc_client, "broadcast", {"action": "play-now", "bulletin": {
        "id": "lu-khan", "title": "Lũ suối", "text": EMERGENCY, "priority": "emergency", "zones": ["xom"],
        "chime": {"before": False, "after": False}}})
    assert res["ok"] is True, res
    for p in pages:
        expect(p.locator("#board")).to_have_attribute("data-emergency", "1", timeout=10000)
        expect(p.locator("#page .body")).to_have_text(EMERGENCY)
    asrun = wait_until(lambda: [m.json()["data"] for m in coc_client.on("event/asrun")
                                if m.json()["data"]["bulletin_id"] == "lu-khan"], timeout=30, what="the as-run row")[0]
    assert asrun["outcome"] == "played" and asrun["ended"] - asrun["started"] > 1.0, asrun
    on_air = wait_until(lambda: len(r := [m.json()["data"] for m in coc_client.on("event/on_air")
                                          if m.json()["data"]["bulletin_id"] == "lu-khan"]) == 2 and r,
                        timeout=10, what="the on_air start and end at the COC")
    assert [(e["phase"], e["zone"]) for e in on_air] == [("start", "xom"), ("end", "xom")]
    assert on_air[0]["text"] == EMERGENCY
    for p in pages:
        expect(p.locator("#board")).to_have_attribute("data-emergency", "0")
        events = p.evaluate("() => window.boardEvents")
        on = next(e["at"] for e in events if e["emergency"]) / 1000
        off = next(e["at"] for e in events if not e["emergency"] and e["at"] / 1000 > on) / 1000
        assert -0.3 <= on - asrun["started"] <= 1.0, (on, asrun)
        assert -0.3 <= off - asrun["ended"] <= 1.0, (off, asrun)
        p.context.close()
    led = [(at, xml) for at, xml in card.stamped()[sent_before:] if b'<in method="AddProgram"' in xml]
    on_led = next(at for at, xml in led if b'flag="realtime"' in xml and EMERGENCY.encode() in xml)
    off_led = next(at for at, xml in led if at > on_led and b'flag="realtime"' not in xml)
    assert on_led - asrun["started"] <= 1.0 and off_led - asrun["ended"] <= 1.0, (on_led, off_led, asrun)


def test_the_page_keeps_updating_across_an_agent_restart_and_a_wrong_secret_is_404(
        browser: Browser, agent: ConsoleAgent, urls: dict[str, str], coc: tuple[Broker, Recorder]) -> None:
    page = board_page(browser, urls["cong"], 800, 480)
    expect(page.locator("#board")).not_to_have_attribute("data-version", "0")
    agent.restart()
    broker, _ = coc
    rec = Recorder(broker.port, topics=("commune/v1/t1/cmd/+/result", "commune/v1/t1/status")).start()
    try:
        wait_until(lambda: any(m.json().get("online") for m in rec.on("t1/status")), timeout=20, what="online")
        res = command(rec, "signboard", {"action": "show", "id": "sau-khoi-dong", "text": "Sau khi khởi động lại."})
        assert res["ok"] is True, res
        expect(page.locator("#page .body")).to_have_text("Sau khi khởi động lại.", timeout=10000)  # no reload
        assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
        bad = command(rec, "signboard", {"action": "schedule", "entries": [{"day": 9, "time": "07:30", "what": "x"}]})
        assert bad["ok"] is False and bad["error"] == "entries[1].day: 9 is not a day (1 = Thứ Hai .. 7 = Chủ Nhật)"
        root, secret = urls["cong"].split("/b/")
        for path in ("/b/not-the-secret", "/b/not-the-secret/events", "/b/not-the-secret/board.js",
                     f"/b/{secret}/x.js", "/", "/login", "/status", "/static/console.css"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(root + path, timeout=5)
            assert err.value.code == 404, path
        assert command(rec, "signboard", {"action": "clear", "id": "sau-khoi-dong"})["ok"] is True  # health changes
    finally:
        rec.stop()
    counters = wait_until(lambda: (c := _counters(agent)).get("bad_secret") == 3 and c, timeout=10,
                          what="the refusals counted in health")
    assert counters["not_found"] == 5 and counters["bad_command"] == 1, counters
    page.context.close()


def _counters(agent: ConsoleAgent) -> dict[str, int]:
    try:
        return json.loads((agent.data / "status.json").read_text())["drivers"]["signboard"]["counters"]
    except (OSError, ValueError, KeyError):
        return {}
