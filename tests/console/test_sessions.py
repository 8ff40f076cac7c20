"""Sessions in their state file: hashes only, kept across restarts, expiry and revocation hold, bad files survived."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.logs import KvLogger
from drivers.console.sessions import Sessions, account_mark, revoke_on_disk, token_hash
from tests.support.tmpfs import mounted_tmpfs

PW = {"canbo": "scrypt$hash-of-canbo", "kythuat": "scrypt$hash-of-kythuat"}


class Box:
    """One console's sessions over one file, with the accounts it checks them against."""

    def __init__(self, path: Path, lifetime_s: float = 3600, max_sessions: int = 10, per_user: int = 10) -> None:
        self.path = path
        self.per_user = per_user
        self.accounts = dict(PW)
        self.counts: Counter[str] = Counter()
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions

    def open(self) -> Sessions:
        def mark_of(name: str) -> str | None:
            return account_mark(self.accounts[name]) if name in self.accounts else None

        return Sessions(self.lifetime_s, self.path, self.max_sessions, mark_of, KvLogger("test.sessions"),
                        lambda name, n=1: self.counts.update({name: n}), per_user=self.per_user)


def _login(s: Sessions, user: str = "canbo") -> str:
    sid, _ = s.create(user, "official", PW[user])
    asyncio.run(s.save())
    return sid


def test_a_session_survives_a_reopen_with_its_csrf_and_the_file_has_no_token(tmp_path: Path) -> None:
    box = Box(tmp_path / "sessions.json")
    s = box.open()
    sid = _login(s)
    csrf = s.get(sid).csrf  # type: ignore[union-attr]
    text = box.path.read_text()
    assert sid not in text and csrf not in text and token_hash(sid) in text
    assert os.stat(box.path).st_mode & 0o077 == 0
    again = box.open().get(sid)
    assert again is not None and again.user == "canbo" and again.csrf == csrf
    forged = csrf[:-1] + ("y" if csrf.endswith("x") else "x")  # always one character off, never the token itself
    assert Sessions.csrf_ok(again, csrf) and not Sessions.csrf_ok(again, forged)
    assert box.open().get("not-a-session") is None and box.open().get("x" * 10_000) is None


def test_logout_removes_the_session_from_the_file(tmp_path: Path) -> None:
    box = Box(tmp_path / "sessions.json")
    s = box.open()
    sid, other = _login(s), _login(s, "kythuat")
    s.drop(sid)
    asyncio.run(s.save())
    assert token_hash(sid) not in box.path.read_text()
    assert box.open().get(sid) is None and box.open().get(other) is not None


def test_expiry_and_a_shortened_lifetime_hold_after_a_restart(tmp_path: Path) -> None:
    box = Box(tmp_path / "sessions.json", lifetime_s=0.3)
    sid = _login(box.open())
    assert box.open().get(sid) is not None
    time.sleep(0.35)
    assert box.open().get(sid) is None
    box.lifetime_s = 3600
    sid = _login(box.open())
    box.lifetime_s = 60
    s = box.open()
    got = s.get(sid)
    assert got is not None and got.expires <= got.created + 60
    doc = json.loads(box.path.read_text())
    doc["sessions"][token_hash(sid)]["created"] = time.time() - 61  # made longer ago than the new lifetime
    box.path.write_text(json.dumps(doc))
    assert box.open().get(sid) is None


def test_a_new_password_or_a_removed_account_ends_sessions_in_memory_and_on_disk(tmp_path: Path) -> None:
    box = Box(tmp_path / "sessions.json")
    running = box.open()
    sid, tech = _login(running), _login(running, "kythuat")
    box.accounts["canbo"] = "scrypt$a-new-password"
    assert running.get(sid) is None and running.get(tech) is not None  # the agent that runs refuses it at once
    asyncio.run(running.save())
    assert token_hash(sid) not in box.path.read_text()
    # the CLI's side, while the agent is stopped: the user's records leave the file
    box.accounts["canbo"] = PW["canbo"]
    sid = _login(running)
    assert revoke_on_disk(box.path, "canbo") == 1 and token_hash(sid) not in box.path.read_text()
    assert revoke_on_disk(box.path, "canbo") == 0 and revoke_on_disk(tmp_path / "missing.json", "canbo") == 0
    del box.accounts["kythuat"]
    assert box.open().get(tech) is None


def test_the_number_of_sessions_is_capped_oldest_first(tmp_path: Path) -> None:
    box = Box(tmp_path / "sessions.json", max_sessions=10)
    s = box.open()
    sids = [_login(s) for _ in range(13)]
    assert len(s) == 10 and box.counts["sessions_evicted"] == 3
    assert [s.get(x) is not None for x in sids] == [False] * 3 + [True] * 10
    assert len(json.loads(box.path.read_text())["sessions"]) == 10
    box.max_sessions = 5  # a smaller cap in the config applies at the next start
    again = box.open()
    assert len(again) == 5 and again.get(sids[-1]) is not None and again.get(sids[7]) is None


GARBAGE = [b"", b"\x00\xff\xfe garbage", b"{", b"[]", b"null", b'{"version": 1}', b'{"version": 2, "sessions": {}}',
           b'{"version": 1, "sessions": []}', "{\"version\": 1, \"sessions\": {\"đ\": 1}}".encode(),
           b'{"version": 1, "sessions": {"' + b"a" * 64 + b'": {"user": "canbo", "role": "root"}}}']


@pytest.mark.parametrize("content", GARBAGE)
def test_a_corrupt_file_means_no_sessions_a_log_line_and_a_counter(tmp_path: Path, content: bytes,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    box = Box(tmp_path / "sessions.json")
    box.path.write_bytes(content)
    with caplog.at_level(logging.INFO):
        s = box.open()
    assert len(s) == 0 and box.counts["sessions_file_bad"] == 1
    lines = [r.getMessage() for r in caplog.records if "sessions_file_unreadable" in r.getMessage()
             or "sessions_loaded" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    sid = _login(s)  # and it works on from there, replacing the bad file
    assert box.open().get(sid) is not None


def test_a_file_too_large_or_unreadable_is_not_read(tmp_path: Path) -> None:
    box = Box(tmp_path / "sessions.json")
    box.path.write_bytes(b" " * (5 * 1024 * 1024))
    assert len(box.open()) == 0 and box.counts["sessions_file_bad"] == 1
    box.path.unlink()
    box.path.mkdir()  # a directory where the file should be: EISDIR
    s = box.open()
    assert len(s) == 0 and box.counts["sessions_file_bad"] == 2
    s.create("canbo", "official", PW["canbo"])
    asyncio.run(s.save())  # the write fails: logged and counted, the login itself stands
    assert box.counts["sessions_write_failed"] == 1 and len(s) == 1


def test_bad_records_are_skipped_and_good_ones_kept(tmp_path: Path) -> None:
    box = Box(tmp_path / "sessions.json")
    sid = _login(box.open())
    doc = json.loads(box.path.read_text())
    good = doc["sessions"][token_hash(sid)]
    doc["sessions"].update({"b" * 64: {**good, "expires": "tomorrow"}, "c" * 64: {**good, "user": "../etc"},
                            "d" * 64: {**good, "created": True}, "f" * 64: {**good, "expires": float("inf")},
                            "short": good, "e" * 64: [1, 2]})
    box.path.write_text(json.dumps(doc))
    s = box.open()
    assert len(s) == 1 and s.get(sid) is not None and box.counts["sessions_file_bad"] == 1


def test_a_full_disk_keeps_the_old_file_and_the_sessions_in_memory(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        box = Box(disk / "sessions.json")
        s = box.open()
        sid = _login(s)
        before = box.path.read_bytes()
        try:
            with open(disk / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        except OSError:
            pass
        other = _login(s, "kythuat")
        assert box.counts["sessions_write_failed"] >= 1 and box.path.read_bytes() == before
        assert s.get(sid) is not None and s.get(other) is not None
        (disk / "filler").unlink()


_json = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=70), kids, max_size=4),
                     max_leaves=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.sampled_from(["version", "sessions", "x"]), _json) | _json)
def test_any_json_in_the_file_never_crashes_the_load(tmp_path: Path, doc: object) -> None:
    box = Box(tmp_path / "fuzz.json")
    box.path.write_text(json.dumps(doc))
    s = box.open()
    assert len(s) == 0
