"""Redirects that stay on the console (judged by Chromium's own URL parser), the language switch as a form with
CSRF, a shared fragment that cannot be made to show a viewer's CSRF token, and secrets masked in the config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest
import requests
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Browser, Page

from drivers.console.pages_status import mask
from tests.console.conftest import bulletin_form, csrf_of, page_csrf
from tests.console.harness import OFFICIAL, ConsoleAgent
from tests.support.agentproc import write_config

HOSTILE_NEXT = ["/\t/evil.example", "/\n/evil.example", "//evil.example", "/\\evil.example", "\\\\evil.example",
                "https://evil.example/", "/%09/evil.example", "/ /evil.example", "/\u3000/evil.example",
                "/\u200b/evil.example", "/x/..//evil.example", "/..//evil.example", "javascript:alert(1)",
                "/bulletins?x=1#frag", "/lịch?t=Họp dân"]


@pytest.fixture(scope="module")
def page(browser: Browser, agent: ConsoleAgent) -> Iterator[Page]:
    ctx = browser.new_context()
    p = ctx.new_page()
    p.goto(agent.url + "/login")
    try:
        yield p
    finally:
        ctx.close()


def _origin(page: Page, location: str, base: str) -> str:
    """Where Chromium goes when a response from `base` says Location: `location`."""
    return page.evaluate("([loc, base]) => new URL(loc, base).origin", [location, base])


def _switch(s: requests.Session, url: str, token: str, target: str) -> requests.Response:
    return s.post(url + "/lang", data={"csrf": token, "to": "en", "next": target}, allow_redirects=False, timeout=10)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_NEXT),
                        st.builds(lambda a, b: a + b, st.sampled_from(["/", "//", "/\\", "/\t", "/%2f"]),
                                  st.text(max_size=20))))
@example(target="/\t/evil.example")
def test_whatever_next_is_the_language_switch_stays_on_the_console(agent: ConsoleAgent, page: Page,
                                                                   target: str) -> None:
    s = requests.Session()
    token = csrf_of(s.get(agent.url + "/login", timeout=10).text)  # logged out: the login form's token
    r = _switch(s, agent.url, token, target)
    assert r.status_code == 303, r.text[:300]
    location = r.headers["Location"]
    assert location.startswith("/") and location.isascii()
    assert _origin(page, location, agent.url + "/lang") == agent.url, (target, location)


def test_the_login_next_stays_on_the_console(agent: ConsoleAgent, page: Page) -> None:
    for target in ("/\t/evil.example", "/\\evil.example", "/..//evil.example", "/calendar"):
        s = requests.Session()
        token = csrf_of(s.get(agent.url + "/login", timeout=10).text)
        r = s.post(agent.url + "/login", data={"csrf": token, "username": OFFICIAL[0], "password": OFFICIAL[1],
                                               "next": target}, allow_redirects=False, timeout=20)
        assert r.status_code == 303
        assert _origin(page, r.headers["Location"], agent.url + "/login") == agent.url, target
        assert r.headers["Location"] == ("/calendar" if target == "/calendar" else "/")


def test_the_language_switch_is_a_form_with_csrf_and_a_link_changes_nothing(agent: ConsoleAgent,
                                                                            official: requests.Session) -> None:
    r = official.get(agent.url + "/lang?to=en&next=/%09/evil.example", allow_redirects=False, timeout=10)
    assert r.status_code == 405 and "Set-Cookie" not in r.headers  # a link or an <img> switches nothing
    assert "Bản tin" in official.get(agent.url + "/bulletins", timeout=10).text
    r = _switch(official, agent.url, "forged", "/bulletins")
    assert r.status_code == 403 and "Set-Cookie" not in r.headers
    r = _switch(official, agent.url, page_csrf(official, agent.url + "/bulletins"), "/calendar")
    assert r.status_code == 303 and r.headers["Location"] == "/calendar"
    assert "Log out" in official.get(agent.url + "/calendar", timeout=10).text
    anonymous = requests.post(agent.url + "/lang", data={"to": "en", "next": "/"}, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 403


def test_the_language_switch_works_logged_out_and_in_in_the_browser(browser: Browser, agent: ConsoleAgent) -> None:
    ctx = browser.new_context(base_url=agent.url)
    p = ctx.new_page()
    p.goto("/login")
    p.click("form.lang button")
    p.wait_for_url("**/login")
    assert p.locator("h1").inner_text() == "Log in"
    p.fill("#username", OFFICIAL[0])
    p.fill("#password", OFFICIAL[1])
    p.click("#login button[type=submit]")
    p.wait_for_url("**/bulletins")
    p.goto("/calendar")
    p.click("form.lang button")
    p.wait_for_url("**/calendar")
    assert "Lịch phát" in p.locator("h1").inner_text()
    ctx.close()


def test_a_title_cannot_make_a_shared_fragment_show_the_viewers_csrf_token(agent: ConsoleAgent,
                                                                           official: requests.Session) -> None:
    token = page_csrf(official, agent.url + "/bulletins/new")
    title = "@@csrf@@ <csrf 0123456789abcdef> {{ csrf }}"
    r = official.post(agent.url + "/bulletins/new", data={**bulletin_form(title=title), "csrf": token},
                      allow_redirects=False, timeout=20)
    assert r.status_code == 303
    listing = official.get(agent.url + "/bulletins", timeout=10).text
    assert "@@csrf@@ &lt;csrf 0123456789abcdef&gt; {{ csrf }}" in listing  # the title, as text
    mine = page_csrf(official, agent.url + "/bulletins")
    assert listing.count(mine) == len(re.findall(r'name="csrf" value="' + re.escape(mine) + '"', listing)) > 0


def test_secrets_in_the_config_are_masked_for_the_screen(tmp_path: Path) -> None:
    from agent.config import load

    path = write_config(tmp_path / "agent.yaml", 1883, tmp_path / "data", None, network={
        "snmp": [{"name": "sw", "host": "127.0.0.1", "community": "cong-dong-bi-mat"}]})
    doc = yaml.safe_load(path.read_text())
    assert doc["network"]["snmp"][0]["community"] == "cong-dong-bi-mat"
    shown = str(mask(load(path).config.model_dump(mode="json")))
    assert "cong-dong-bi-mat" not in shown and "'community': '••••••'" in shown
    assert mask({"url": "rtsp://admin:mat-khau@10.0.0.9/live"}) == {"url": "rtsp://••••••@10.0.0.9/live"}
