"""In real Chromium against the real agent process: drivers' details in Vietnamese (and English), escaped; logins
that survive a restart of the agent and end with `user remove`/`passwd`; a garbage sessions file survived."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from drivers.console.sessions import token_hash
from tests.console.harness import OFFICIAL, TECHNICIAN, ConsoleAgent, add_user, log_in
from tests.support.agentproc import ROOT
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

TEMP = ("tamthoi", "mat-khau-tam-thoi")
HOSTILE = "<img src=x onerror=alert(1)>\"'&"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder]) -> Iterator[ConsoleAgent]:
    """A bulletin_dir under a plain file: the broadcast driver reports it, with a hostile name, as degraded."""
    broker, _ = coc
    tmp = tmp_path_factory.mktemp("restart")
    (tmp / "a-file").write_text("not a directory")
    a = ConsoleAgent(tmp, broker.port, broker.password_file("agent"),
                     broadcast={"bulletin_dir": str(tmp / "a-file" / HOSTILE)}).add_users()
    add_user(a.config, TEMP[0], "official", TEMP[1])
    a.start()
    try:
        yield a
    finally:
        a.stop()


def _context(browser: Browser, agent: ConsoleAgent, user: tuple[str, str]) -> BrowserContext:
    ctx = browser.new_context(base_url=agent.url, locale="vi-VN")
    page = ctx.new_page()
    page.goto("/login")
    log_in(page, user)
    page.close()
    return ctx


def _logged_in(ctx: BrowserContext) -> bool:
    page = ctx.new_page()
    try:
        page.goto("/bulletins")
        return page.url.endswith("/bulletins") and page.locator("form[action='/logout']").count() == 1
    finally:
        page.close()


def _file(agent: ConsoleAgent) -> Path:
    return agent.data / "console" / "sessions.json"


def _users_in_file(agent: ConsoleAgent) -> list[str]:
    return sorted(r["user"] for r in json.loads(_file(agent).read_text())["sessions"].values())


def _token(ctx: BrowserContext) -> str:
    return next(c["value"] for c in ctx.cookies() if c["name"] == "ca_session")


def _cli(agent: ConsoleAgent, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "--config", str(agent.config), "user", *args],
                          input=stdin, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, timeout=60)


def _status_json(agent: ConsoleAgent) -> dict:
    try:
        return json.loads((agent.data / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _detail(page: Page, driver: str) -> str:
    return page.locator(f"#live tr[data-driver={driver}] td.detail").inner_text()


def test_drivers_details_in_vietnamese_and_english_with_free_text_escaped(browser: Browser,
                                                                          agent: ConsoleAgent) -> None:
    wait_until(lambda: _status_json(agent).get("drivers", {}).get("broadcast", {}).get("state") == "degraded"
               and _status_json(agent)["drivers"].get("console", {}).get("state") == "ok", timeout=30,
               what="broadcast degraded and console ok in status.json")
    doc = _status_json(agent)["drivers"]["broadcast"]
    bad_dir = str(agent.tmp / "a-file" / HOSTILE)
    # COC consumers keep the English line; the template and its parameters travel with it
    assert doc["detail"] == f"bulletin_dir {bad_dir}: Not a directory"
    assert doc["detail_template"] == "bulletin_dir {path}: {error}"
    assert doc["detail_params"] == {"path": bad_dir, "error": "Not a directory"}
    dialogs: list[str] = []
    ctx = _context(browser, agent, OFFICIAL)
    page = ctx.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto("/status")
    assert _detail(page, "broadcast") == f"không dùng được thư mục bản tin (bulletin_dir) {bad_dir}: Not a directory"
    assert _detail(page, "console") == f"đang phục vụ tại {agent.url}/"
    assert page.locator("#live img[src=x]").count() == 0  # the name is text, not markup
    page.click("form.lang button")
    expect(page.locator("h1")).to_have_text("Status")
    assert _detail(page, "broadcast") == f"bulletin_dir {bad_dir}: Not a directory"
    assert _detail(page, "console") == f"{agent.url}/"
    page.click("form.lang button")  # and back, after the page has refreshed itself once
    expect(page.locator("h1")).to_have_text("Tình trạng")
    wait_until(lambda: _detail(page, "console") == f"đang phục vụ tại {agent.url}/", timeout=10,
               what="the refreshed part in Vietnamese")
    assert page.locator("#live img[src=x]").count() == 0 and dialogs == []
    ctx.close()


def test_logins_survive_a_restart_and_end_with_user_remove_and_passwd(browser: Browser,
                                                                      agent: ConsoleAgent) -> None:
    official, temp, tech = (_context(browser, agent, u) for u in (OFFICIAL, TEMP, TECHNICIAN))
    text = _file(agent).read_text()
    for ctx in (official, temp, tech):
        assert _token(ctx) not in text and token_hash(_token(ctx)) in text  # only the hash is on disk
    agent.restart()
    assert _logged_in(official) and _logged_in(temp) and _logged_in(tech)
    # the CSRF token of a session is the same after the restart: the logout form (a POST) is accepted
    page = tech.new_page()
    page.goto("/bulletins")
    page.click("form[action='/logout'] button")
    page.wait_for_url("**/login")
    assert not _logged_in(tech) and "kythuat" not in _users_in_file(agent)
    # removing an account ends its sessions while the agent runs, and on disk
    r = _cli(agent, "remove", TEMP[0])
    assert r.returncode == 0 and "1 session(s) ended" in r.stdout, r.stderr
    assert "tamthoi" not in _users_in_file(agent)
    assert not _logged_in(temp) and _logged_in(official)
    # a new password set while the agent is stopped: after the start, the old login is over
    assert agent.stop() == 0
    n = _users_in_file(agent).count("canbo")
    assert n >= 1
    r = _cli(agent, "passwd", OFFICIAL[0], "--password-stdin", stdin="mat-khau-moi-cua-can-bo\n")
    assert r.returncode == 0 and f"; {n} session(s) ended" in r.stdout, r.stderr
    assert "canbo" not in _users_in_file(agent)
    agent.start()
    assert not _logged_in(official)
    for ctx in (official, temp, tech):
        ctx.close()


def test_the_status_feed_outlives_a_restart(browser: Browser, agent: ConsoleAgent) -> None:
    """The login's audit event is on the status page after a restart that came right after it (the console
    writes its feed on the way out, not only every 10 s)."""
    ctx = _context(browser, agent, TECHNICIAN)
    try:
        agent.restart()
        page = ctx.new_page()
        page.goto("/status")
        expect(page.locator("p.ev").filter(has_text="audit").first).to_be_visible(timeout=15_000)
        assert "audit" in (agent.data / "console" / "feed.json").read_text()
    finally:
        ctx.close()


@pytest.mark.parametrize("garbage", [b"\x00\xff garbage {{{", b'{"version": 1, "sessions": [1, 2, 3]}'])
def test_a_garbage_sessions_file_starts_with_no_sessions_and_the_login_page_works(
        browser: Browser, agent: ConsoleAgent, garbage: bytes) -> None:
    ctx = _context(browser, agent, TECHNICIAN)
    assert agent.stop() == 0
    _file(agent).write_bytes(garbage)
    log_before = len(agent.proc.log_text())
    agent.start()
    assert not _logged_in(ctx)  # everyone logs in again, nothing crashed
    page = ctx.new_page()
    page.goto("/status")
    log_in(page, TECHNICIAN, "**/status")
    expect(page.locator("h1")).to_have_text("Tình trạng")
    lines = [ln for ln in agent.proc.log_text()[log_before:].splitlines() if "sessions_file_unreadable" in ln]
    assert len(lines) == 1 and "reason=" in lines[0] and "path=" in lines[0], lines
    wait_until(lambda: _status_json(agent).get("drivers", {}).get("console", {}).get("counters", {})
               .get("sessions_file_bad") == 1, timeout=15, what="sessions_file_bad counted in status.json")
    assert _users_in_file(agent) == ["kythuat"]  # the bad file was replaced at the next login
    ctx.close()
