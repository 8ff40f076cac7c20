"""Fixtures: one real agent (broker, broadcast on ALSA's file device and RTP on loopback, console) per module."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from playwright.sync_api import Browser, sync_playwright

from tests.console.harness import OFFICIAL, TECHNICIAN, ConsoleAgent
from tests.support.mosquitto import Broker, Recorder

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (scripts/lib/setup-env.sh installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder]) -> Iterator[ConsoleAgent]:
    broker, _ = coc
    tmp = tmp_path_factory.mktemp("agent")
    a = ConsoleAgent(tmp, broker.port, broker.password_file("agent")).add_users().start()
    try:
        yield a
    finally:
        a.stop()


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html[:2000]
    return m.group(1)


def login(url: str, user: tuple[str, str]) -> requests.Session:
    s = requests.Session()
    page = s.get(url + "/login", timeout=10)
    r = s.post(url + "/login", data={"csrf": csrf_of(page.text), "username": user[0], "password": user[1]},
               allow_redirects=False, timeout=20)
    assert r.status_code == 303, r.text[:500]
    return s


def page_csrf(s: requests.Session, url: str) -> str:
    return csrf_of(s.get(url, timeout=10).text)


@pytest.fixture
def official(agent: ConsoleAgent) -> requests.Session:
    return login(agent.url, OFFICIAL)


@pytest.fixture
def technician(agent: ConsoleAgent) -> requests.Session:
    return login(agent.url, TECHNICIAN)


def bulletin_form(**over: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"title": "Thông báo họp", "source": "text", "text": "Xin chào bà con.", "sched": "daily",
                            "times": "06:30, 17:00", "repeat": "1", "gap": "0", "priority": "normal",
                            "volume": "100", "zones": "loa", "chime_before": "1", "do": "save"}
    form.update(over)
    return form


def write_tone(path: Path, seconds: float = 1.5) -> Path:
    """A real recording for uploads: ffmpeg's sine source encoded to the file's type."""
    import subprocess

    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", str(path)], check=True)
    return path
