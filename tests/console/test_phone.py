"""What officials read on a phone (360×740, real Chromium, real agent): a status page of bounded height with a
full feed, tables as cards, link reasons in Vietnamese, nothing wider than the screen."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from agent.driver import Event, Reading
from agent.statefile import write_json
from drivers.broadcast.store import DB_FILE, Store
from drivers.console.feed import FEED_FILE, MAX_EVENTS, Feed
from tests.console.harness import OFFICIAL, TECHNICIAN, ConsoleAgent, log_in
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

PHONE = {"width": 360, "height": 740}
MAX_STATUS_PX = 2000  # the menu is one scrolling row on a phone, so new pages cost no height
MIN_CELL_PX = 96  # a table cell narrower than this wraps its words letter by letter at 16 px
SHOTS = Path("/tmp/console-phone")
LONG_TITLE = "Thông báo lịch tiêm phòng dại cho chó mèo tại nhà văn hóa thôn Đông"
REASON_VI = "3 lần kiểm tra liên tiếp không có phản hồi trên 2/3 địa chỉ kiểm tra"
WEATHER = ("air_temperature", "air_humidity", "wind_speed", "rain_last_hour")
SOIL = ("soil_moisture", "soil_temperature", "soil_ec", "soil_ph", "nitrogen", "phosphorus", "potassium")
REASON_EN = "3 probes in a row unanswered on 2/3 targets"


def _feed() -> Feed:
    """The demo's amount of data after a busy day: a weather station and two soil probes, two alarms, and a full
    event list (failovers, camera events, bulletins)."""
    f = Feed()
    for device, names in (("tram-thoi-tiet", WEATHER), ("ruong-1", SOIL), ("ruong-2", SOIL)):
        f("sensors", tuple(Reading(n, 21.5, "%", tags={"source": "lora", "device": device}, ts=time.time())
                           for n in names))
    f("sensors", (Event("sensor_alarm", {"rule": "kho", "source": "lora", "device": "ruong-1",
                                         "reading": "soil_moisture", "value": 12, "unit": "%"}, severity="warning"),))
    f("sensors", (Event("sensor_alarm", {"rule": "nong", "source": "lora", "device": "tram-thoi-tiet",
                                         "reading": "air_temperature", "value": 39, "unit": "°C"},
                        severity="critical"),))
    for i in range(MAX_EVENTS):
        if i % 3 == 0:
            f("network", (Event("failover", {"from": "wan1", "to": "wan2", "reason": REASON_EN}, severity="warning"),))
        elif i % 3 == 1:
            f("cameras", (Event("person", {"camera": "cong", "phase": "start"}),))
        else:
            f("broadcast", (Event("bulletin_played", {"bulletin": f"b{i}", "zone": "loa"}),))
    return f


def _links() -> dict:
    """links.json as the network driver writes it: one link down (an outage), one up and in use."""
    down = {"lost_in_row": 3, "targets_silent": 2, "targets": 3}
    up = {"good": 3, "targets": 3, "span_s": 10, "worst_loss_pct": 0.0}
    return {"updated": time.time(), "current": "wan2", "switches_last_hour": 2, "links": [
        {"name": "wan1", "state": "down", "in_use": False, "reason": REASON_EN,
         "reason_template": "{lost_in_row} probes in a row unanswered on {targets_silent}/{targets} targets",
         "reason_params": down},
        {"name": "wan2-4g-viettel", "state": "up", "in_use": True, "metered": True, "role": "balance",
         "in_set": True, "share_pct": 100.0,
         "budget": {"billing_day": 5, "cycle_start": "2026-03-05", "actions": ["notify", "defer_bulk"],
                    "used_pct": 84.2, "monthly": {"used_mb": 842.4, "budget_mb": 1000.0, "pct": 84.2}},
         "reason": "healthy on 3/3 targets over 10s (loss <= 0.0%)",
         "reason_template": "healthy on {good}/{targets} targets over {span_s}s (loss <= {worst_loss_pct}%)",
         "reason_params": up}]}


def _seed(data: Path) -> None:
    """What a box that has run for a while keeps: the console's feed, the links, the cameras, an as-run log."""
    (data / "console").mkdir(parents=True)
    write_json(data / "console" / FEED_FILE, _feed().state(), indent=None)
    (data / "cameras" / "snapshots" / "cong").mkdir(parents=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=640x360",
                    "-frames:v", "1", str(data / "cameras" / "snapshots" / "cong" / f"{time.time_ns():020d}_e1.jpg")],
                   check=True)
    (data / "cameras" / "state.json").write_text(json.dumps({"ts": time.time(), "cameras": {
        "cong": {"online": True, "problem": ""}, "san-kho-thoc": {"online": False, "problem": "stream: timeout"}}}))
    (data / "broadcast").mkdir()
    st = Store(data / "broadcast" / DB_FILE)
    try:
        now = time.time()
        for i in range(40):
            st.add_asrun({"bulletin_id": f"b{i}", "title": LONG_TITLE, "zone": "xom-bac", "scheduled": now - 600 * i,
                          "started": now - 600 * i + 0.2, "ended": now - 600 * i + 30, "lateness_ms": 212.5,
                          "outcome": "played" if i % 4 else "interrupted", "reason": "" if i % 4 else
                          "emergency bulletin khan-cap-1 took the zone"})
    finally:
        st.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder]) -> Iterator[ConsoleAgent]:
    broker, _ = coc
    tmp = tmp_path_factory.mktemp("phone")
    _seed(tmp / "data")
    # a network section without links: the driver writes its (empty) link state once at start and then never
    # again (no verdicts, the report an hour away), and the page reads the links written here after it
    network = {"links": [], "report_interval_s": 3600, "failover": {"manage_routes": False, "policy_routing": False}}
    a = ConsoleAgent(tmp, broker.port, broker.password_file("agent"), site_id="t-phone",
                     extra={"network": network}).add_users().start()
    links = a.data / "network" / "links.json"
    wait_until(lambda: _json(links).get("links") == [], timeout=20, what="the network driver's first link state")
    links.write_text(json.dumps(_links()))
    try:
        yield a
    finally:
        a.stop()


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _phone(browser: Browser, agent: ConsoleAgent, user: tuple[str, str] = OFFICIAL) -> Page:
    ctx = browser.new_context(viewport=PHONE, base_url=agent.url, locale="vi-VN")
    page = ctx.new_page()
    page.goto("/login")
    log_in(page, user)
    return page


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_status_page_shows_a_metered_links_data_budget(browser: Browser, agent: ConsoleAgent) -> None:
    page = _phone(browser, agent)
    page.goto("/status")
    budget = page.locator('#links .budget[data-budget="wan2-4g-viettel"]')
    expect(budget).to_have_text("84% dung lượng · hoãn tải lớn")
    expect(budget).to_have_attribute("title", "842/1000 MB (84%); chu kỳ cước từ 2026-03-05")
    assert page.locator('#links .budget[data-budget="wan1"]').count() == 0


def test_status_page_with_a_full_feed_stays_short_on_a_phone(browser: Browser, agent: ConsoleAgent) -> None:
    page = _phone(browser, agent)
    page.goto("/status")
    expect(page.locator("#live")).to_contain_text("tram-thoi-tiet")
    height = page.evaluate("document.documentElement.scrollHeight")
    _shot(page, "status")
    assert height <= MAX_STATUS_PX, height
    # nothing is lost by being folded away: the whole feed is one tap away
    more = page.locator("#events details.more")
    more.locator("summary").click()
    assert page.locator("#events .ev").count() == MAX_EVENTS
    readings = page.locator("#readings details")
    assert readings.count() == 3
    readings.first.locator("summary").click()
    expect(readings.first.locator("table.pairs tr")).to_have_count(len(SOIL))
    _shot(page, "status-unfolded")
    page.context.close()


def test_status_page_stays_folded_as_the_user_left_it_across_refreshes(browser: Browser, agent: ConsoleAgent) -> None:
    page = _phone(browser, agent)
    page.goto("/status")
    first = page.locator("#updated").inner_text()
    page.locator("#events details.more summary").click()
    # refresh_s is 1 in these tests: the live part is fetched again and the list the user opened stays open
    page.wait_for_function("t => document.getElementById('updated').innerText !== t", arg=first, timeout=15000)
    assert page.locator("#events details.more").get_attribute("open") is not None
    page.context.close()


def test_link_reasons_read_in_vietnamese_and_in_english(browser: Browser, agent: ConsoleAgent) -> None:
    page = _phone(browser, agent)
    page.goto("/status")
    row = page.locator("[data-link='wan1']")
    expect(row).to_contain_text(REASON_VI)
    expect(page.locator("[data-link='wan2-4g-viettel']")).to_contain_text(
        "phản hồi tốt trên 3/3 địa chỉ kiểm tra trong 10 giây (mất gói ≤ 0.0%)")
    assert REASON_EN not in page.locator("#live").inner_text()
    page.click("form.lang button")
    expect(page.locator("[data-link='wan1']")).to_contain_text(REASON_EN)
    page.click("form.lang button")
    page.context.close()


def _narrow_cells(page: Page) -> list[str]:
    return page.evaluate(f"""() => [...document.querySelectorAll('main th, main td')]
        .filter(c => c.offsetParent !== null && c.innerText.trim() !== ''
                     && c.getBoundingClientRect().width < {MIN_CELL_PX})
        .map(c => c.tagName + ':' + c.innerText.trim().slice(0, 30) + ':'
                  + Math.round(c.getBoundingClientRect().width))""")


PAGES = {OFFICIAL: ("/bulletins", "/bulletins/new", "/calendar", "/emergency", "/lexicon", "/asrun", "/reports",
                   "/status"),
         TECHNICIAN: ("/tech/status", "/tech/config", "/tech/doctor", "/tech/audit")}


@pytest.mark.parametrize("user", list(PAGES), ids=["official", "technician"])
def test_every_page_fits_a_phone_and_tables_read_as_cards(browser: Browser, agent: ConsoleAgent,
                                                          user: tuple[str, str]) -> None:
    page = _phone(browser, agent, user)
    for path in PAGES[user]:
        page.goto(path)
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        _shot(page, path.strip("/").replace("/", "-"))
        assert widths[0] <= widths[1] == 360, (path, widths)
        assert _narrow_cells(page) == [], path
    page.context.close()


def test_asrun_rows_are_cards_with_their_labels(browser: Browser, agent: ConsoleAgent) -> None:
    page = _phone(browser, agent)
    page.goto("/asrun")
    row = page.locator("table.asrun tbody tr").first
    expect(row).to_contain_text(LONG_TITLE)
    cells = row.locator("td")
    labels = [cells.nth(i).get_attribute("data-label") for i in range(cells.count())]
    assert labels == ["Giờ hẹn", "Bản tin", "Vùng", "Kết quả", "Trễ (ms)", "Ghi chú", "Nghe thấy"]
    # the title heads the card; every other value follows its label, on one line, not one letter per line
    title, first = cells.nth(1).bounding_box(), cells.nth(0).bounding_box()
    assert title is not None and first is not None and title["y"] < first["y"] and title["width"] >= 300
    label = page.evaluate("c => { const s = getComputedStyle(c, '::before'); return [s.content, s.width]; }",
                          cells.nth(0).element_handle())
    assert label[0] == '"Giờ hẹn"' and float(label[1].removesuffix("px")) >= MIN_CELL_PX, label
    # on a wide screen the same table is a table again
    page.set_viewport_size({"width": 1024, "height": 740})
    assert page.locator("table.asrun thead").is_visible()
    page.context.close()
