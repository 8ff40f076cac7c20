"""Logged-in sessions (in memory: an agent restart logs everyone out) and the login throttle."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from drivers.console.accounts import Role

ADDRESS_FACTOR = 4


@dataclass
class Session:
    user: str
    role: Role
    csrf: str
    expires: float
    created: float = field(default_factory=time.time)


class Sessions:
    """Random session ids in an HttpOnly cookie; each session has its own CSRF token."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._by_id: dict[str, Session] = {}

    def create(self, user: str, role: Role) -> tuple[str, Session]:
        self._prune()
        sid = secrets.token_urlsafe(32)
        s = Session(user, role, secrets.token_urlsafe(24), time.time() + self.lifetime_s)
        self._by_id[sid] = s
        return sid, s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is None:
            return None
        if s.expires < time.time():
            del self._by_id[sid]
            return None
        return s

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def drop_user(self, user: str) -> None:
        for sid in [k for k, s in self._by_id.items() if s.user == user]:
            del self._by_id[sid]

    def _prune(self) -> None:
        now = time.time()
        for sid in [k for k, s in self._by_id.items() if s.expires < now]:
            del self._by_id[sid]

    @staticmethod
    def csrf_ok(session: Session, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(session.csrf.encode(), token.encode())


class LoginThrottle:
    """Counts failed logins per user name and per client address; past the limit, both wait."""

    def __init__(self, max_failures: int, window_s: float, lockout_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._fails: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}

    def wait_s(self, *keys: str) -> float:
        """Seconds until these keys may try again (0 = now)."""
        now = time.monotonic()
        return max([0.0] + [until - now for k in keys if (until := self._locked.get(k, 0.0)) > now])

    def failed(self, user_key: str, address_key: str) -> None:
        """An office shares one address behind its router: the address gets four times the user's allowance."""
        now = time.monotonic()
        for k, limit in ((user_key, self.max_failures), (address_key, self.max_failures * ADDRESS_FACTOR)):
            q = self._fails.setdefault(k, deque())
            q.append(now)
            while q and q[0] < now - self.window_s:
                q.popleft()
            if len(q) >= limit:
                self._locked[k] = now + self.lockout_s
                q.clear()
        if len(self._fails) > 10000:  # a flood of names must not grow memory without bound
            self._fails.clear()

    def succeeded(self, *keys: str) -> None:
        for k in keys:
            self._fails.pop(k, None)
