"""Accounts: scrypt hashes, the accounts file, `commune-agent user ...`, the login throttle, form fuzzing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.broadcast.bulletin import BulletinError, parse_bulletin
from drivers.console.accounts import AccountError, Accounts
from drivers.console.forms import parse_form
from drivers.console.i18n import translate
from drivers.console.kdf import PasswordChecker, check_password, hash_password
from drivers.console.throttle import Attempt, LoginThrottle
from tests.support.agentproc import ROOT

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def test_scrypt_hashes_are_salted_and_checked_in_constant_form() -> None:
    a, b = hash_password("mật khẩu dài"), hash_password("mật khẩu dài")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert check_password("mật khẩu dài", a) and not check_password("mật khẩu dai", a)
    for broken in ("", "scrypt$x", "md5$1$2$3$4$5", a[:-4]):
        assert not check_password("mật khẩu dài", broken)


def test_the_check_in_a_child_process_agrees_with_the_hash_and_one_child_serves_a_burst() -> None:
    import asyncio

    stored = hash_password("mật khẩu – đúng")

    async def main() -> tuple[list[bool], int]:
        checker = PasswordChecker()
        try:
            got = [await checker.check("mật khẩu – đúng", stored), await checker.check("mật khẩu – sai", stored),
                   await checker.check("bất kỳ", None),  # no such user: same work, never a match
                   await checker.check("x" * 100_000, stored), await checker.check("mật khẩu – đúng", stored)]
            return got, checker.starts
        finally:
            await checker.close()

    assert asyncio.run(main()) == ([True, False, False, False, True], 1)


def test_a_killed_or_idle_checker_child_is_replaced_and_its_memory_goes_back() -> None:
    import asyncio
    import os
    import signal

    stored = hash_password("đúng")

    async def main() -> None:
        checker = PasswordChecker(idle_s=0.2)
        try:
            assert await checker.check("đúng", stored)
            first = checker._proc
            assert first is not None
            os.kill(first.pid, signal.SIGKILL)  # unseen by the checker until it asks
            assert await checker.check("đúng", stored) and checker.starts == 2
            second = checker._proc
            assert second is not None
            async with asyncio.timeout(10):
                await second.wait()  # closed after idle_s without a check
            assert second.returncode == 0 and checker._proc is None
            assert await checker.check("đúng", stored) and checker.starts == 3
        finally:
            await checker.close()

    asyncio.run(main())


def test_an_unknown_user_costs_the_same_single_scrypt_as_a_wrong_password(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    stored = hash_password("mật khẩu đúng")
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counted(password: bytes, **kw: int) -> bytes:  # the real KDF, counted
        calls.append((kw["n"], kw["r"], kw["p"]))
        return real(password, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    assert not check_password("sai", stored)
    known = list(calls)
    calls.clear()
    assert not check_password("sai", None)
    assert calls == known == [(2**14, 8, 1)]  # one scrypt each, with the same parameters


def test_accounts_file_add_passwd_remove(tmp_path: Path) -> None:
    acc = Accounts(tmp_path / "console" / "users.json")
    acc.add("canbo", "official", "12345678")
    assert stat.S_IMODE(os.stat(acc.path).st_mode) == 0o600
    assert "12345678" not in acc.path.read_text()
    assert acc.verify("canbo", "12345678") is not None and acc.verify("canbo", "sai") is None
    assert acc.verify("khong-co", "12345678") is None
    with pytest.raises(AccountError, match="exists"):
        acc.add("canbo", "official", "12345678")
    with pytest.raises(AccountError, match="too short"):
        acc.add("moi", "official", "1234")
    with pytest.raises(AccountError, match="role"):
        acc.add("moi", "admin", "12345678")
    with pytest.raises(AccountError, match="user name"):
        acc.add("Bad Name", "official", "12345678")
    acc.passwd("canbo", "mat-khau-moi")
    other = Accounts(acc.path)  # the running console sees the CLI's change
    assert other.verify("canbo", "mat-khau-moi") is not None and other.verify("canbo", "12345678") is None
    acc.remove("canbo")
    assert other.get("canbo") is None


def test_a_corrupt_accounts_file_means_no_accounts_not_a_crash(tmp_path: Path) -> None:
    p = tmp_path / "users.json"
    p.write_text('{"users": {"x": {"role": "root", "password": 5}}, ')
    assert Accounts(p).users() == [] and Accounts(p).verify("x", "whatever") is None


def _cli(cfg: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "--config", str(cfg), "user", *args], input=stdin,
                          text=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_user_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({"site": {"site_id": "t1"}, "coc": {"host": "127.0.0.1"},
                                   "data_dir": str(tmp_path / "data"), "console": {"port": 18999}}))
    r = _cli(cfg, "add", "chutich", "--role", "official", "--password-stdin", stdin="mat-khau-chu-tich\n")
    assert r.returncode == 0, r.stderr
    r = _cli(cfg, "add", "chutich", "--role", "official", "--password-stdin", stdin="mat-khau-chu-tich\n")
    assert r.returncode == 2 and "exists" in r.stderr
    r = _cli(cfg, "add", "kt", "--role", "technician", "--password-stdin", stdin="ngan\n")
    assert r.returncode == 2 and "too short" in r.stderr
    r = _cli(cfg, "add", "kt", "--role", "admin", "--password-stdin", stdin="dai-hon-8-ky-tu\n")
    assert r.returncode == 2 and "role must be one of official, technician" in r.stderr
    assert _cli(cfg, "add", "kt", "--role", "technician", "--password-stdin", stdin="dai-hon-8-ky-tu\n").returncode == 0
    listed = _cli(cfg, "list").stdout
    assert "chutich" in listed and "official" in listed and "technician" in listed
    assert _cli(cfg, "passwd", "chutich", "--password-stdin", stdin="moi-moi-moi-moi\n").returncode == 0
    acc = Accounts(tmp_path / "data" / "console" / "users.json")
    assert acc.verify("chutich", "moi-moi-moi-moi") is not None
    assert _cli(cfg, "remove", "chutich").returncode == 0
    assert _cli(cfg, "remove", "chutich").returncode == 2
    assert "chutich" not in _cli(cfg, "list").stdout


def test_throttle_locks_a_user_and_gives_an_address_more_room() -> None:
    th = LoginThrottle(3, 60, 0.3)
    for _ in range(3):
        assert isinstance(th.begin("user:a", "addr:1"), Attempt)  # counted as they start: three in flight
    assert th.begin("user:a", "addr:1") == 0.3  # the fourth waits, whether the three have finished or not
    assert th.wait_s("user:a") > 0 and th.wait_s("user:b", "addr:1") == 0
    for name in "bcde":
        for _ in range(3):
            assert isinstance(th.begin(f"user:{name}", "addr:2"), Attempt)
    assert th.begin("user:z", "addr:2") == 0.3  # 12 attempts from one address
    time.sleep(0.35)
    assert th.wait_s("user:a", "addr:1") == 0 and isinstance(th.begin("user:a", "addr:1"), Attempt)


def test_a_right_password_forgives_the_name_and_leaves_the_address_only_its_failures() -> None:
    th = LoginThrottle(2, 60, 30)
    th.begin("user:a", "addr:1")
    ok = th.begin("user:a", "addr:1")
    assert isinstance(ok, Attempt)
    th.succeeded(ok)
    assert all(isinstance(th.begin("user:a", "addr:1"), Attempt) for _ in range(2))  # the name's budget again
    for i in range(4):  # the address (8) holds the failed attempt and the two new ones, not the right one
        th.begin(f"user:x{i}", "addr:1")
    assert isinstance(th.begin("user:y", "addr:1"), Attempt) and isinstance(th.begin("user:w", "addr:1"), float)


FIELDS = ("title", "source", "text", "sched", "once_date", "once_time", "times", "start_date", "end_date", "cron",
          "repeat", "gap", "priority", "volume", "id", "audio_ref")
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
_field_value = st.one_of(_text, st.sampled_from(["", "text", "audio", "once", "daily", "weekdays", "cron",
                                                 "06:30", "25:00", "31/12/2099", "29/02/2025", "0 7 * * *",
                                                 "normal", "emergency", "100", "-1", "999"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=st.dictionaries(st.sampled_from(FIELDS), _field_value),
       wd=st.lists(st.sampled_from(["1", "2", "7", "8", "x", ""]), max_size=4),
       zones=st.lists(st.sampled_from(["loa", "xom", "nope", ""]), max_size=3))
def test_any_form_gives_errors_or_a_bulletin_the_one_validation_accepts(form: dict[str, str], wd: list[str],
                                                                        zones: list[str]) -> None:
    multi = {"wd": wd, "zones": zones}
    r = parse_form(form, lambda k: multi.get(k, []), lambda k, **kw: translate("vi", k, **kw), TZ, ["loa", "xom"],
                   2000, None)
    assert (r.bulletin is None) == bool(r.errors)
    for msg in r.errors.values():
        assert msg and "{" not in msg  # a translated, formatted Vietnamese line
    if r.bulletin is not None:
        try:
            parse_bulletin(r.bulletin, "bulletin", 2000)
        except BulletinError as exc:
            # the only disagreement allowed: a cron expression croniter reads differently is refused, not stored
            assert "schedule" in str(exc), (r.bulletin, exc)
