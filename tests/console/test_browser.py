"""The console in a real headless Chromium (Debian's), driven by Playwright, against the real agent process."""

from __future__ import annotations

import struct
import time
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from drivers.broadcast.store import DB_FILE, Store
from tests.console.conftest import bulletin_form, login, page_csrf, write_tone
from tests.console.harness import OFFICIAL, TECHNICIAN, ConsoleAgent, log_in
from tests.support.wait import wait_until

LONG_VI = ("Thông báo của Ủy ban nhân dân xã về việc phòng chống bão số 7. " * 12).strip()


def _page(browser: Browser, agent: ConsoleAgent, user: tuple[str, str], width: int = 1024) -> Page:
    ctx = browser.new_context(viewport={"width": width, "height": 740}, base_url=agent.url, locale="vi-VN")
    page = ctx.new_page()
    page.goto("/login")
    log_in(page, user)
    return page


def _local(seconds: float) -> datetime:
    return datetime.now().astimezone().astimezone(__import__("zoneinfo").ZoneInfo("Asia/Ho_Chi_Minh")) + \
        timedelta(seconds=seconds)


def _asrun(agent: ConsoleAgent, title: str) -> list[dict]:
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        return [r for r in st.asrun(500) if r["title"] == title]
    finally:
        st.close()


def test_unauthenticated_browser_lands_on_the_login_page(browser: Browser, agent: ConsoleAgent) -> None:
    page = browser.new_page(base_url=agent.url)
    page.goto("/calendar")
    assert page.url.startswith(f"{agent.url}/login?next=") and page.url.endswith("calendar")
    expect(page.locator("h1")).to_have_text("Đăng nhập")
    page.fill("#username", OFFICIAL[0])
    page.fill("#password", "sai-mat-khau")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    page.close()


def test_bulletin_due_in_seconds_is_previewed_aired_and_logged(browser: Browser, agent: ConsoleAgent) -> None:
    page = _page(browser, agent, OFFICIAL)
    page.click("text=Soạn bản tin")
    title = f"Họp dân {time.monotonic_ns()}"
    due = _local(20)
    page.fill("#title", title)
    page.fill("#text", "Kính mời bà con dự họp từ 7h-11h tại nhà văn hóa. Giá lợn hơi 7.500đ/kg.")
    page.check("input[name=sched][value=once]")
    page.fill("#once_date", due.strftime("%d/%m/%Y"))
    page.fill("#once_time", due.strftime("%H:%M:%S"))
    page.check("input[name=zones][value=loa]")
    page.click("#do-preview")
    expect(page.locator("#spoken")).to_contain_text("từ bảy giờ đến mười một giờ")
    expect(page.locator("#spoken")).to_contain_text("bảy nghìn năm trăm đồng một ki lô gam")
    audio = page.locator("#preview-audio")
    # polled from here: wait_for_function would need 'unsafe-eval', which the console's CSP rightly refuses
    wait_until(lambda: audio.evaluate("a => a.readyState") >= 1, timeout=15, what="the preview's metadata")
    assert audio.evaluate("a => a.duration") > 1.0
    head = page.evaluate("""async () => {
        const r = await fetch(document.getElementById('preview-audio').src);
        const b = new Uint8Array(await r.arrayBuffer());
        return {type: r.headers.get('content-type'), size: b.length, magic: String.fromCharCode(...b.slice(0, 4))};
    }""")
    assert head["type"] == "audio/wav" and head["magic"] == "RIFF" and head["size"] > 20000, head
    page.click("#do-save")
    page.wait_for_url("**/bulletins?done=saved*")
    expect(page.locator("p.ok")).to_contain_text(title)
    card = page.locator("li.card", has_text=title)
    expect(card.locator(".when").first).to_have_text(due.strftime("%d/%m/%Y %H:%M"))
    rows = wait_until(lambda: [r for r in _asrun(agent, title) if r["outcome"] == "played"], timeout=60,
                      interval=0.3, what="the bulletin airing")
    assert rows[0]["zone"] == "loa" and abs(rows[0]["lateness_ms"]) < 1500
    out = agent.alsa_out
    assert out.exists() and out.stat().st_size > 32000 and out.stat().st_mtime >= rows[0]["started"] - 1
    page.click("text=Nhật ký phát")
    row = page.locator("table.asrun tr", has_text=title)
    expect(row).to_contain_text("đã phát")
    expect(row.locator("td").first).to_have_text(datetime.fromtimestamp(
        rows[0]["scheduled"], due.tzinfo).strftime("%d/%m/%Y %H:%M:%S"))
    page.click("text=Lịch phát")
    expect(page.locator("section.day").first).to_contain_text(due.strftime("%d/%m/%Y"))
    page.context.close()


def test_emergency_interrupts_what_is_on_air(browser: Browser, agent: ConsoleAgent) -> None:
    s = login(agent.url, OFFICIAL)
    token = page_csrf(s, agent.url + "/bulletins/new")
    long_title = f"Bản tin dài {time.monotonic_ns()}"
    r = s.post(agent.url + "/bulletins/new", data={**bulletin_form(title=long_title, text=LONG_VI, zones="xom"),
                                                   "csrf": token}, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        bid = next(x.bulletin.id for x in st.all() if x.bulletin.title == long_title)
    finally:
        st.close()
    assert s.post(agent.url + f"/bulletins/{bid}/play", data={"csrf": token}, timeout=60).status_code == 200
    page = _page(browser, agent, OFFICIAL)
    page.click("text=Khẩn cấp")
    em_title = f"Lũ quét {time.monotonic_ns()}"
    page.fill("#title", em_title)
    page.fill("#text", "Khẩn cấp: nước lũ đang lên nhanh, bà con khu vực ven suối di chuyển ngay lên chỗ cao.")
    page.uncheck("input[name=zones][value=loa]")
    page.check("input[name=zones][value=xom]")
    page.click("#em-next")
    expect(page.locator("h1")).to_have_text("Xác nhận phát khẩn cấp")
    page.click("#em-air")  # without the box ticked: refused, nothing aired
    expect(page.locator("#err-confirm")).to_have_text("Hãy đánh dấu ô xác nhận.")
    assert not _asrun(agent, em_title)
    page.check("#confirm")
    page.click("#em-air")
    expect(page.locator("#played")).to_contain_text(em_title)
    got = wait_until(lambda: [r for r in _asrun(agent, long_title) if r["outcome"] == "interrupted"], timeout=60,
                     interval=0.3, what="the long bulletin interrupted")
    assert "emergency" in got[0]["reason"]
    wait_until(lambda: [r for r in _asrun(agent, em_title) if r["outcome"] == "played" and r["zone"] == "xom"],
               timeout=60, interval=0.3, what="the emergency played")
    page.context.close()


def test_upload_a_recording_and_hear_it(browser: Browser, agent: ConsoleAgent, tmp_path: Path) -> None:
    mp3 = write_tone(tmp_path / "thong-bao.mp3", 2.0)
    page = _page(browser, agent, OFFICIAL)
    page.goto("/bulletins/new")
    title = f"Ghi âm {time.monotonic_ns()}"
    page.fill("#title", title)
    page.check("input[name=source][value=audio]")
    expect(page.locator("#text")).to_be_hidden()
    page.set_input_files("#recording", str(mp3))
    page.check("input[name=sched][value=daily]")
    page.fill("#times", "06:30, 17:00")
    page.click("#do-preview")
    audio = page.locator("#preview-audio")
    wait_until(lambda: audio.evaluate("a => a.readyState") >= 1, timeout=15, what="the recording's metadata")
    assert 1.5 < audio.evaluate("a => a.duration") < 4.0
    page.click("#do-save")  # the recording uploaded with the preview is kept; no second upload
    page.wait_for_url("**/bulletins?done=saved*")
    expect(page.locator("li.card", has_text=title)).to_contain_text("Tệp ghi âm")
    page.context.close()


def test_validation_errors_are_vietnamese_and_next_to_their_field(browser: Browser, agent: ConsoleAgent) -> None:
    page = _page(browser, agent, OFFICIAL)
    page.goto("/bulletins/new")
    page.fill("#once_time", "25:61")
    page.fill("#text", "Nội dung")
    page.click("#do-save")
    expect(page.locator("#form-errors")).to_have_text("Vui lòng sửa các lỗi được đánh dấu bên dưới.")
    expect(page.locator("#err-title")).to_have_text("Không được để trống.")
    expect(page.locator("#err-once_time")).to_have_text("Giờ không hợp lệ, cần dạng HH:MM (24 giờ).")
    assert page.evaluate("document.getElementById('title').nextElementSibling.id") == "err-title"
    assert page.evaluate("document.getElementById('once_time').nextElementSibling.id") == "err-once_time"
    expect(page.locator("#text")).to_have_value("Nội dung")  # what was typed is kept
    page.check("input[name=sched][value=weekdays]")
    page.fill("#title", "Lịch tuần")
    page.fill("#times", "7h30")
    page.fill("#end_date", "01/01/2020")
    page.fill("#start_date", "05/01/2020")
    page.click("#do-save")
    expect(page.locator("#err-wd")).to_have_text("Chọn ít nhất một thứ.")
    expect(page.locator("#err-end_date")).to_have_text("Ngày kết thúc trước ngày bắt đầu.")
    page.context.close()


def test_official_cannot_open_technician_pages_in_the_browser(browser: Browser, agent: ConsoleAgent) -> None:
    page = _page(browser, agent, OFFICIAL)
    assert page.locator("nav.menu a", has_text="Kỹ thuật").count() == 0
    resp = page.goto("/tech/config")
    assert resp is not None and resp.status == 403
    expect(page.locator("main")).to_contain_text("Bạn không có quyền mở trang này.")
    page.context.close()
    tech = _page(browser, agent, TECHNICIAN)
    resp = tech.goto("/tech/config")
    assert resp is not None and resp.status == 200
    expect(tech.locator("#config")).to_contain_text("••••••")
    tech.context.close()


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_phone_width_has_no_horizontal_overflow(browser: Browser, agent: ConsoleAgent, tmp_path: Path) -> None:
    s = login(agent.url, OFFICIAL)
    token = page_csrf(s, agent.url + "/bulletins/new")
    s.post(agent.url + "/bulletins/new", data={**bulletin_form(title="Dài" + "x" * 150, text="Một từ rất dài " +
                                                               "a" * 300), "csrf": token}, timeout=30)
    page = _page(browser, agent, OFFICIAL, width=360)
    for path in ("/bulletins", "/bulletins/new", "/calendar", "/emergency", "/asrun", "/reports", "/status"):
        page.goto(path)
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1] == 360, (path, widths)
        shot = tmp_path / f"{path.strip('/').replace('/', '-') or 'home'}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert _png_size(shot)[0] == 360, path
    page.context.close()


def test_status_page_refreshes_by_itself(browser: Browser, agent: ConsoleAgent) -> None:
    page = _page(browser, agent, OFFICIAL)
    page.goto("/status")
    first = page.locator("#updated").inner_text()
    assert first.startswith("Cập nhật lúc ")
    # no reload: the page's own script fetches /status/live again (refresh_s is 1 in these tests)
    wait_until(lambda: page.locator("#updated").inner_text() != first, timeout=15, interval=0.2,
               what="the status page refreshing itself")
    # drivers and event sources by the names officials read (drivers/registry.py labels), not code names
    live = page.locator("#live")
    expect(live).to_contain_text("Loa truyền thanh")
    expect(live).to_contain_text("Trang quản lý · audit")
    assert "broadcast" not in live.inner_text()
    page.context.close()
