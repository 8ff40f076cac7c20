"""Logins under attack against the real console (aiohttp clients from their own loopback addresses): guesses sent
at once meet the throttle, a burst of refusals is audited as a few sums, the session cap is per user."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from typing import Any, Iterator

import aiohttp
import pytest
import requests

from tests.console.conftest import csrf_of, login
from tests.console.harness import OFFICIAL, TECHNICIAN, ConsoleAgent, add_user
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

WINDOW_S = 2
MAX_FAILURES = 2  # per name; an address gets four times that
TARGET = ("nan-nhan", "mat-khau-nan-nhan")  # the name under attack: its lockout must not touch the others
OFFICE = ("van-phong", "mat-khau-van-phong")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder]) -> Iterator[ConsoleAgent]:
    broker, _ = coc
    a = ConsoleAgent(tmp_path_factory.mktemp("agent"), broker.port, broker.password_file("agent"),
                     console={"login_audit_window_s": WINDOW_S, "login_max_failures": MAX_FAILURES,
                              "max_sessions": 10, "max_sessions_per_user": 3}).add_users()
    for name, pw in (TARGET, OFFICE):
        add_user(a.config, name, "official", pw)
    a.start()
    try:
        yield a
    finally:
        a.stop()


def _client(address: str) -> aiohttp.ClientSession:
    """A browser-like client on its own loopback address (the throttle counts per address)."""
    conn = aiohttp.TCPConnector(local_addr=(address, 0), limit=0, force_close=True)
    return aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def _login_token(s: aiohttp.ClientSession, url: str) -> str:
    async with s.get(url + "/login") as r:
        return csrf_of(await r.text())


async def _post_login(s: aiohttp.ClientSession, url: str, token: str, user: str, password: str) -> int:
    async with s.post(url + "/login", data={"csrf": token, "username": user, "password": password},
                      allow_redirects=False) as r:
        await r.read()
        return r.status


def test_guesses_sent_at_once_meet_the_budget_and_another_login_stays_quick(agent: ConsoleAgent) -> None:
    async def main() -> tuple[list[int], float, int]:
        async with _client("127.0.0.2") as attacker, _client("127.0.0.3") as tech:
            token = await _login_token(attacker, agent.url)
            tech_token = await _login_token(tech, agent.url)
            burst = [asyncio.ensure_future(_post_login(attacker, agent.url, token, TARGET[0], f"doan-{i}"))
                     for i in range(60)]
            await asyncio.wait(burst, return_when=asyncio.FIRST_COMPLETED)  # the burst is at the console
            t0 = time.monotonic()
            status = await _post_login(tech, agent.url, tech_token, *TECHNICIAN)
            took = time.monotonic() - t0
            return list(await asyncio.gather(*burst)), took, status

    codes, took, status = asyncio.run(main())
    # a 401 is a guess that was hashed and checked; a 429 was refused before any hashing
    assert codes.count(401) <= MAX_FAILURES and codes.count(429) == 60 - codes.count(401), codes
    assert status == 303 and took < 2.0, (status, took)


def _refusal_rows(agent: ConsoleAgent, address: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(f"file:{agent.data / 'console' / 'console.db'}?mode=ro", uri=True, timeout=10)
    try:
        return list(db.execute("SELECT action, detail FROM audit WHERE address = ? AND ok = 0", (address,)))
    finally:
        db.close()


def _attempts(detail: str) -> int:
    m = re.search(r"\battempts=(\d+)", detail or "")
    return int(m.group(1)) if m else 1


def test_a_burst_of_refused_logins_is_audited_as_a_few_sums(agent: ConsoleAgent,
                                                            coc: tuple[Broker, Recorder]) -> None:
    _, rec = coc
    address = "127.0.0.4"

    async def main() -> list[int]:
        async with _client(address) as s:
            token = await _login_token(s, agent.url)
            gate = asyncio.Semaphore(50)

            async def one(i: int) -> int:
                async with gate:
                    return await _post_login(s, agent.url, token, f"ke-gian-{i}-{'x' * 80}", "sai")

            return list(await asyncio.gather(*(one(i) for i in range(500))))

    t0 = time.monotonic()
    codes = asyncio.run(main())
    elapsed = time.monotonic() - t0
    assert set(codes) <= {401, 429} and len(codes) == 500
    rows = wait_until(lambda: (r := _refusal_rows(agent, address)) and sum(_attempts(d) for _, d in r) >= 500 and r,
                      timeout=30, what="the refusals summed in the audit trail")
    assert sum(_attempts(d) for _, d in rows) == 500 and {a for a, _ in rows} == {"login_refused"}
    assert len(rows) <= elapsed / WINDOW_S + 2, (len(rows), elapsed)  # was one row per refusal
    for _, detail in rows:
        assert len(detail) <= 500 and len(re.search(r"names=(\S*)", detail).group(1).split(",")) <= 10, detail

    def events() -> list[dict[str, Any]]:
        return [d for m in rec.on("event/audit") if (d := m.json()["data"])["address"] == address]

    got = wait_until(lambda: (e := events()) and sum(_attempts(d["detail"]) for d in e) >= 500 and e, timeout=20,
                     what="the sums at the COC")
    assert len(got) == len(rows)


def test_an_official_logging_in_again_and_again_never_logs_the_technician_out(agent: ConsoleAgent) -> None:
    tech = login(agent.url, TECHNICIAN)
    officials = [login(agent.url, OFFICIAL) for _ in range(10)]  # max_sessions is 10 in all, 3 per user

    def logged_in(s: requests.Session) -> bool:
        return s.get(agent.url + "/bulletins", allow_redirects=False, timeout=10).status_code == 200

    assert logged_in(tech)
    assert [logged_in(s) for s in officials] == [False] * 7 + [True] * 3  # the official's own oldest ended


def test_a_right_password_is_not_held_up_by_the_address_budget(agent: ConsoleAgent) -> None:
    """Successful logins from an office's one address never add up to a lockout."""
    async def one() -> int:
        async with _client("127.0.0.5") as s:  # each login a browser of its own
            return await _post_login(s, agent.url, await _login_token(s, agent.url), *OFFICE)

    async def main() -> list[int]:
        return [await one() for _ in range(4 * MAX_FAILURES + 2)]

    assert asyncio.run(main()) == [303] * (4 * MAX_FAILURES + 2)
