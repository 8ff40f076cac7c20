"""The real agent (mosquitto, sensors over MQTT, broadcast on ALSA's file device with espeak-ng, the console):
water levels published on the farm broker make rules fire, air bulletins and survive a restart; time compressed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from playwright.sync_api import Browser, expect

from drivers.broadcast.store import DB_FILE, Store
from tests.console.conftest import login, page_csrf
from tests.console.harness import OFFICIAL, ConsoleAgent, log_in
from tests.support.mosquitto import Broker, Recorder
from tests.support.ports import free_port
from tests.support.wait import wait_until

FLOOD = "Mực nước sông {device} đã lên {value} mét, vượt mức báo động {level} mét"


def _rule(rid: str, device: str, **over: Any) -> dict[str, Any]:
    return {"id": rid, "trigger": {"reading": {"name": "water_level", "device": device, "above": 3.0}},
            "actions": [{"bulletin": {"text": FLOOD, "title": f"{rid} {{device}}", "priority": "high",
                                      "zones": ["loa"], "gap_s": 0}}],
            "cooldown_s": 600, **over}


RULES = [
    _rule("flood", "river-1", trigger={"reading": {"name": "water_level", "device": "river-1", "above": 3.0,
                                                   "for": 2}}),
    _rule("flap", "river-2"),
    _rule("resume", "river-3", trigger={"reading": {"name": "water_level", "device": "river-3", "above": 3.0,
                                                    "for": 8}}),
    _rule("ask", "river-4", confirm={"timeout_s": 120, "on_timeout": "air"}),
    _rule("deadline", "river-5", confirm={"timeout_s": 9, "on_timeout": "air"}),
    {"id": "board", "trigger": {"reading": {"name": "water_level", "device": "river-6", "above": 3.0}},
     "actions": [{"signboard": {"title": "Báo động lũ {device}", "text": FLOOD}}]},
    {"id": "board-off", "trigger": {"reading": {"name": "water_level", "device": "river-6", "below": 2.0}},
     "actions": [{"signboard": {"id": "auto-board", "clear": True}}]},
]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder]) -> Iterator[ConsoleAgent]:
    broker, _ = coc
    secret = broker.password_file("agent")
    sensors = {"flush_interval_s": 0.1, "mqtt": [{
        "name": "river-bus", "port": broker.port, "username": "agent", "password_file": str(secret),
        "topics": [{"filter": "tele/+/SENSOR", "format": "tasmota",
                    "fields": [{"source": "WL.Level", "name": "water_level", "unit": "m"}]}]}]}
    a = ConsoleAgent(tmp_path_factory.mktemp("agent"), broker.port, secret,
                     extra={"sensors": sensors, "automations": {"rules": RULES},
                            "signboard": {"listen": "127.0.0.1", "port": free_port(),
                                          "boards": {"cong": {"type": "screen"}}}}).add_users().start()
    try:
        yield a
    finally:
        a.stop()
    assert "Traceback" not in a.proc.log_text() and "command_without_schema" not in a.proc.log_text()


def level(rec: Recorder, device: str, value: float) -> None:
    rec.publish(f"tele/{device}/SENSOR", json.dumps({"WL": {"Level": value}}))


def asrun(agent: ConsoleAgent, rule: str) -> list[dict[str, Any]]:
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        return [r for r in st.asrun(1000) if r["bulletin_id"].startswith(f"auto-{rule}-")]
    finally:
        st.close()


def events(rec: Recorder, kind: str, rule: str) -> list[dict[str, Any]]:
    return [m.json() for m in rec.on(f"/event/{kind}") if m.json()["data"].get("rule") == rule]


def saved(agent: ConsoleAgent) -> dict[str, Any]:
    try:
        return json.loads((agent.data / "automations" / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def test_a_level_held_for_its_duration_airs_a_bulletin_speaking_the_value(agent: ConsoleAgent,
                                                                          coc: tuple[Broker, Recorder]) -> None:
    _, rec = coc
    level(rec, "river-1", 3.4)
    started = time.time()
    wait_until(lambda: saved(agent).get("rules", {}).get("flood", {}).get("timers"), timeout=10,
               what="the for: timer started")
    level(rec, "river-1", 3.45)
    [fired] = wait_until(lambda: events(rec, "automation_fired", "flood"), timeout=15, what="flood fired")
    assert fired["data"]["text"] == "Mực nước sông river-1 đã lên 3,45 mét, vượt mức báo động 3 mét"
    assert fired["ts"] - started >= 2.0 - 0.2  # not before the level was held for 2 s
    [row] = wait_until(lambda: [r for r in asrun(agent, "flood") if r["outcome"] == "played"], timeout=30,
                       interval=0.2, what="the flood bulletin played")
    assert row["zone"] == "loa" and row["title"] == "flood river-1" and row["engine"] == "espeak"
    assert agent.alsa_out.stat().st_size > 44


def notices(agent: ConsoleAgent) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads((agent.data / "signboard" / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return {n["id"]: n for n in doc.get("notices", [])}


def test_a_rising_river_puts_a_notice_on_the_boards_and_a_falling_one_takes_it_down(
        agent: ConsoleAgent, coc: tuple[Broker, Recorder]) -> None:
    _, rec = coc
    level(rec, "river-6", 3.5)
    shown = wait_until(lambda: notices(agent).get("auto-board"), timeout=15, what="the rule's notice on the boards")
    assert shown["title"] == "Báo động lũ river-6" and shown["by"] == "automations:board"
    assert shown["text"] == "Mực nước sông river-6 đã lên 3,5 mét, vượt mức báo động 3 mét"
    level(rec, "river-6", 1.5)
    wait_until(lambda: "auto-board" not in notices(agent), timeout=15, what="the notice taken down")


def test_a_flapping_level_airs_at_most_once_per_cooldown(agent: ConsoleAgent, coc: tuple[Broker, Recorder]) -> None:
    _, rec = coc

    def timers() -> dict[str, Any]:
        return saved(agent).get("rules", {}).get("flap", {}).get("timers", {})

    for _ in range(6):  # each crossing seen by the rule before the next (a timer stands while above)
        level(rec, "river-2", 3.2)
        wait_until(timers, timeout=10, what="above seen")
        level(rec, "river-2", 2.8)
        wait_until(lambda: not timers(), timeout=10, what="below seen")
    wait_until(lambda: [r for r in asrun(agent, "flap") if r["outcome"] == "played"], timeout=30, interval=0.2,
               what="the first crossing aired")
    wait_until(lambda: saved(agent)["rules"]["flap"]["suppressed"] >= 5, timeout=10, what="crossings held back")
    assert len(events(rec, "automation_fired", "flap")) == 1
    assert len({r["bulletin_id"] for r in asrun(agent, "flap")}) == 1


def test_a_for_timer_and_a_pending_warning_resume_after_a_restart_each_once_at_its_time(
        agent: ConsoleAgent, coc: tuple[Broker, Recorder]) -> None:
    _, rec = coc
    level(rec, "river-5", 3.3)  # asks officials, nobody decides: it airs at its deadline, restart or not
    [asked] = wait_until(lambda: events(rec, "automation_pending", "deadline"), timeout=10, what="pending")
    level(rec, "river-3", 3.6)
    timers = wait_until(lambda: saved(agent).get("rules", {}).get("resume", {}).get("timers"), timeout=10,
                        what="the for: timer saved")
    since = next(iter(timers.values()))["since"]
    agent.restart()  # within the 8 s: nothing is published after it, the saved timer alone must fire
    assert not events(rec, "automation_fired", "resume") and not asrun(agent, "deadline")
    [fired] = wait_until(lambda: events(rec, "automation_fired", "resume"), timeout=20, what="resume fired")
    assert since + 8 - 0.2 <= fired["ts"] <= since + 8 + 2.0, (fired["ts"] - since)
    assert fired["data"]["missed"] is False and fired["data"]["values"]["value"] == "3,6"
    [timeout] = wait_until(lambda: events(rec, "automation_timeout", "deadline"), timeout=15, what="deadline")
    assert timeout["data"]["aired"] is True and timeout["ts"] >= asked["data"]["deadline"] - 0.1
    wait_until(lambda: [r for r in asrun(agent, "resume") if r["outcome"] == "played"]
               and [r for r in asrun(agent, "deadline") if r["outcome"] == "played"], timeout=30, interval=0.2,
               what="the resumed rule and the undecided warning aired")
    assert len(events(rec, "automation_fired", "resume")) == 1
    assert len(events(rec, "automation_timeout", "deadline")) == 1


def test_the_coc_lists_and_switches_rules(agent: ConsoleAgent, coc: tuple[Broker, Recorder], tmp_path: Path) -> None:
    _, rec = coc
    sub = Recorder(rec.port, topics=("commune/v1/t1/cmd/automations/result",)).start()
    try:
        rec.publish("commune/v1/t1/cmd/automations", json.dumps({"request_id": "r1", "action": "disable",
                                                                 "rule": "flap"}))
        rec.publish("commune/v1/t1/cmd/automations", json.dumps({"request_id": "r2", "action": "list"}))
        results = wait_until(lambda: {m.json()["request_id"]: m.json() for m in sub.snapshot()
                                      if m.topic.endswith("/result")} if len(sub.snapshot()) >= 3 else None,
                             timeout=10, what="command results")
    finally:
        sub.stop()
    assert results["r1"]["ok"] and results["r1"]["enabled"] is False
    rules = {r["id"]: r for r in results["r2"]["rules"]}
    assert rules["flap"]["enabled"] is False and "last_fired" in rules["flood"]  # whichever test ran before
    assert saved(agent)["rules"]["flap"]["switched"] is False
    [switched] = wait_until(lambda: events(rec, "automation_switched", "flap"), timeout=10, what="switch event")
    assert switched["data"]["by"] == "coc"


def test_an_official_confirms_a_pending_warning_in_the_console(agent: ConsoleAgent, coc: tuple[Broker, Recorder],
                                                               browser: Browser) -> None:
    _, rec = coc
    level(rec, "river-4", 3.8)
    [asked] = wait_until(lambda: events(rec, "automation_pending", "ask"), timeout=10, what="pending")
    page = browser.new_context(locale="vi-VN").new_page()
    page.goto(agent.url + "/login")
    log_in(page, OFFICIAL)
    page.click("text=Cảnh báo tự động")
    card = page.locator("#pending li.card", has_text="ask")
    expect(card.locator(".spoken")).to_have_text("Mực nước sông river-4 đã lên 3,8 mét, vượt mức báo động 3 mét")
    left = card.locator(".countdown")
    first = left.inner_text()
    expect(left).not_to_have_text(first)  # the countdown moves
    assert not asrun(agent, "ask")
    page.on("dialog", lambda d: d.accept())
    card.locator("button.confirm-pending").click()
    page.wait_for_url("**/automations?done=confirm")
    expect(page.locator("#done")).to_contain_text("Đã duyệt")
    expect(page.locator("#pending li.card", has_text="ask")).to_have_count(0)
    wait_until(lambda: [r for r in asrun(agent, "ask") if r["outcome"] == "played"], timeout=30, interval=0.2,
               what="the confirmed warning aired")
    [confirmed] = events(rec, "automation_confirmed", "ask")
    assert confirmed["data"]["by"] == "console:canbo" and confirmed["data"]["pending"] == asked["data"]["pending"]
    audit = [m.json()["data"] for m in rec.on("/event/audit")]
    assert {"user": "canbo", "action": "automation_confirm", "target": asked["data"]["pending"], "ok": True}.items() \
        <= next(a for a in audit if a["action"] == "automation_confirm").items()
    page.context.close()


def test_deciding_needs_the_sessions_csrf_token_and_a_live_warning(agent: ConsoleAgent) -> None:
    s = login(agent.url, OFFICIAL)
    r = s.post(agent.url + "/automations/pending/nope/confirm", data={"csrf": "forged"}, allow_redirects=False,
               timeout=10)
    assert r.status_code == 403
    r = s.post(agent.url + "/automations/pending/nope/confirm", data={"csrf": page_csrf(s, agent.url + "/automations")},
               allow_redirects=False, timeout=10)
    assert r.status_code == 422 and "no pending warning" in r.text
    assert requests.get(agent.url + "/automations", allow_redirects=False, timeout=10).status_code in (302, 303)
