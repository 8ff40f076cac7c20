"""The pronunciation lexicon in a real Chromium against the real agent: a COC push for the district, an
official's edit with its spoken preview, and the bulletin preview marking what the radio rewrites."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, expect

from tests.console.harness import OFFICIAL, ConsoleAgent, log_in
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until


def test_coc_push_then_official_edit_preview_and_marked_bulletin_preview(
        browser: Browser, agent: ConsoleAgent, coc: tuple[Broker, Recorder]) -> None:
    broker, _ = coc
    rec = Recorder(broker.port, topics=("commune/v1/t1/cmd/broadcast/result", "commune/v1/t1/status")).start()
    try:
        wait_until(lambda: any(m.json().get("online") for m in rec.on("t1/status")), timeout=20,
                   what="the agent online at the COC")
        rec.publish("commune/v1/t1/cmd/broadcast", json.dumps({
            "request_id": "lx-1", "action": "lexicon", "op": "set", "entries": {"Krông Pắc": "Crông Pắc"}}))
        res = wait_until(lambda: [m.json() for m in rec.on("cmd/broadcast/result")
                                  if m.json().get("request_id") == "lx-1"], timeout=10, what="the push's result")
    finally:
        rec.stop()
    assert res[0]["ok"] is True, res

    ctx = browser.new_context(base_url=agent.url, locale="vi-VN")
    page = ctx.new_page()
    page.goto("/login")
    log_in(page, OFFICIAL)
    page.click("text=Cách đọc từ")
    expect(page.locator("#lexicon tr[data-written='Krông Pắc']")).to_contain_text("Crông Pắc")
    expect(page.locator("#lx-version")).to_contain_text("coc")
    page.fill("#written", "HTX")
    page.fill("#spoken", "hợp tác xã dịch vụ")
    page.fill("#sample", "HTX Krông Pắc báo mực nước BĐ3.")
    page.click("#lx-preview")  # nothing saved yet: the preview shows what the entry would do
    expect(page.locator("#lx-spoken")).to_have_text("hợp tác xã dịch vụ Crông Pắc báo mực nước báo động ba.")
    expect(page.locator("#lx-spoken mark.rw-lexicon")).to_have_count(2)
    expect(page.locator("#lx-spoken mark.rw-alarm")).to_have_attribute("title", "BĐ3")
    expect(page.locator("#lexicon tr[data-written='HTX']")).to_have_count(0)
    page.click("#lx-save")
    page.wait_for_url("**/lexicon?done=saved")
    expect(page.locator("#lexicon tr[data-written='HTX']")).to_contain_text("hợp tác xã dịch vụ")

    page.click("text=Soạn bản tin")
    page.fill("#title", "Lũ Krông Pắc")
    page.fill("#text", "HTX Krông Pắc thông báo: từ 20/11 - 25/11 mực nước BĐ3, gọi 1800 6969.")
    due = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(days=1)
    page.check("input[name=sched][value=once]")
    page.fill("#once_date", due.strftime("%d/%m/%Y"))
    page.fill("#once_time", due.strftime("%H:%M:%S"))
    page.check("input[name=zones][value=loa]")
    page.click("#do-preview")
    spoken = page.locator("#spoken")
    expect(spoken).to_contain_text("hợp tác xã dịch vụ Crông Pắc thông báo")
    expect(spoken).to_contain_text("đến ngày hai mươi lăm tháng mười một mực nước báo động ba")
    expect(spoken.locator("mark.rw-lexicon")).to_have_count(2)
    expect(spoken.locator("mark.rw-phone")).to_have_attribute("title", "1800 6969")
    expect(spoken.locator("mark.rw-range")).to_have_count(1)
    audio = page.locator("#preview-audio")
    wait_until(lambda: audio.evaluate("a => a.readyState") >= 1, timeout=15, what="the preview's metadata")
    ctx.close()
