"""Logged-in sessions, kept across agent restarts in one state file that holds only hashes of the tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from agent.logs import KvLogger
from agent.statefile import read_json, read_json_bounded, write_json, write_json_logged
from drivers.console.accounts import ROLES, USERNAME, Role

SESSIONS_FILE = "sessions.json"
FILE_VERSION = 1
MAX_FILE_BYTES = 4 * 1024 * 1024  # far above max_sessions records; a bigger file is not ours
MAX_TOKEN = 128
_HASH = re.compile(r"^[0-9a-f]{64}$")
_MARK = re.compile(r"^[0-9a-f]{16}$")


def token_hash(sid: str) -> str:
    """What the file keeps of a session token: 256 random bits need no slow hash, and the token cannot be
    read back from it."""
    return hashlib.sha256(sid.encode()).hexdigest()


def csrf_of(sid: str) -> str:
    """The session's CSRF token, derived from its secret token: the same after a restart, never stored."""
    mac = hmac.new(sid.encode(), b"commune-agent console csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:32]


def account_mark(password_hash: str) -> str:
    """A short fingerprint of the user's password hash at login: a new password or a removal ends the session."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass
class Session:
    user: str
    role: Role
    account: str
    created: float
    expires: float
    csrf: str = ""


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


class Sessions:
    """Random session tokens in an HttpOnly cookie; the file maps their hashes to user, role and times.

    `mark_of(user)` gives the account's current mark (None: no such user); a session whose mark differs
    is over, in memory and, at the next save, on disk."""

    def __init__(self, lifetime_s: float, path: Path, max_sessions: int, mark_of: Callable[[str], str | None],
                 log: KvLogger, count: Callable[[str, int], None], *, per_user: int) -> None:
        self.lifetime_s = lifetime_s
        self.path = path
        self.max_sessions = max_sessions
        self.per_user = per_user
        self._mark_of = mark_of
        self._log = log
        self._count = count
        self._by_hash: dict[str, Session] = {}
        self._lock = asyncio.Lock()
        self.dirty = False
        self._load()

    # ---- the file --------------------------------------------------------------------------------------------
    def _unreadable(self, reason: str) -> None:
        self._log.warning("sessions_file_unreadable", path=str(self.path), reason=reason, sessions=0)
        self._count("sessions_file_bad", 1)

    def _load(self) -> None:
        """A missing file is a first start; a bad one means no sessions (everyone logs in again), never a crash."""
        data, problem = read_json_bounded(self.path, MAX_FILE_BYTES)
        if problem is not None:
            self._unreadable(problem)
            return
        if data is None:
            return
        if (not isinstance(data, dict) or data.get("version") != FILE_VERSION
                or not isinstance(data.get("sessions"), dict)):
            self._unreadable("not a sessions document")
            return
        now, bad, ended = time.time(), 0, 0
        for h, rec in data["sessions"].items():
            s = self._parse(h, rec)
            if s is None:
                bad += 1
            elif s.expires <= now or self._mark_of(s.user) != s.account:
                ended += 1
            else:
                self._by_hash[h] = s
        if bad:
            self._count("sessions_file_bad", 1)
        ended += self._cap()
        self.dirty = bool(bad or ended)
        self._log.info("sessions_loaded", path=str(self.path), sessions=len(self._by_hash), ended=ended, bad=bad)

    def _parse(self, h: object, rec: object) -> Session | None:
        if not isinstance(h, str) or not _HASH.match(h) or not isinstance(rec, dict):
            return None
        user, role, mark = rec.get("user"), rec.get("role"), rec.get("account")
        created, expires = _number(rec.get("created")), _number(rec.get("expires"))
        if not (isinstance(user, str) and USERNAME.match(user) and role in ROLES and isinstance(mark, str)
                and _MARK.match(mark) and created is not None and expires is not None):
            return None
        # a lifetime shortened in the config applies to sessions made before
        return Session(user, role, mark, created, min(expires, created + self.lifetime_s))

    def _doc(self) -> dict[str, Any]:
        return {"version": FILE_VERSION,
                "sessions": {h: {"user": s.user, "role": s.role, "account": s.account, "created": round(s.created, 3),
                                 "expires": round(s.expires, 3)} for h, s in self._by_hash.items()}}

    async def save(self) -> None:
        """Write the sessions as they are now (in a thread: fsync must not stall the pages); one write at a time,
        and a change made while one is on its way is in the next. A failed write is logged and counted."""
        async with self._lock:
            if not self.dirty:
                return
            self._prune()
            self.dirty = False
            doc = self._doc()
            if not await asyncio.to_thread(write_json_logged, self.path, doc, self._log):
                self._count("sessions_write_failed", 1)

    # ---- sessions --------------------------------------------------------------------------------------------
    def _cap(self) -> int:
        """A user past `per_user` sessions loses their own oldest, never someone else's; past `max_sessions` in
        all, the oldest of whoever holds the most goes. Returns how many ended."""
        mine: dict[str, list[tuple[float, str]]] = {}
        for h, s in self._by_hash.items():
            mine.setdefault(s.user, []).append((s.created, h))
        gone: list[str] = []
        for items in mine.values():
            items.sort()
            while len(items) > self.per_user:
                gone.append(items.pop(0)[1])
        total = sum(len(items) for items in mine.values())
        while total > self.max_sessions:
            items = max(mine.values(), key=lambda i: (len(i), -i[0][0]))
            gone.append(items.pop(0)[1])
            total -= 1
        for h in gone:
            del self._by_hash[h]
        if gone:
            self._count("sessions_evicted", len(gone))
        return len(gone)

    def _prune(self) -> None:
        now = time.time()
        for h in [h for h, s in self._by_hash.items() if s.expires <= now or self._mark_of(s.user) != s.account]:
            del self._by_hash[h]

    def create(self, user: str, role: Role, password_hash: str) -> tuple[str, Session]:
        """A new session; call save() after it so a restart keeps it."""
        self._prune()
        sid = secrets.token_urlsafe(32)
        now = time.time()
        s = Session(user, role, account_mark(password_hash), now, now + self.lifetime_s, csrf_of(sid))
        self._by_hash[token_hash(sid)] = s
        self._cap()
        self.dirty = True
        return sid, s

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > MAX_TOKEN:
            return None
        h = token_hash(sid)
        s = self._by_hash.get(h)
        if s is None:
            return None
        if s.expires <= time.time() or self._mark_of(s.user) != s.account:
            del self._by_hash[h]
            self.dirty = True
            return None
        s.csrf = csrf_of(sid)
        return s

    def drop(self, sid: str | None) -> None:
        if sid and self._by_hash.pop(token_hash(sid), None) is not None:
            self.dirty = True

    def __len__(self) -> int:
        return len(self._by_hash)

    @staticmethod
    def csrf_ok(session: Session, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(session.csrf.encode(), token.encode())


def revoke_on_disk(path: Path, user: str) -> int:
    """`user passwd|remove`: the user's sessions leave the file at once (a running agent refuses them anyway,
    by the account mark). Returns how many went; a missing or unreadable file has none to remove."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("sessions"), dict):
        return 0
    sessions = data["sessions"]
    gone = [h for h, rec in sessions.items() if isinstance(rec, dict) and rec.get("user") == user]
    if gone:
        data["sessions"] = {h: rec for h, rec in sessions.items() if h not in gone}
        write_json(path, data)
    return len(gone)

