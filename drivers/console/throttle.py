"""Login throttling that holds under concurrency, and the turns in which password hashes run.

An attempt is counted when it starts, before its hash: guesses sent all at once meet the same budget as
guesses sent one by one. Hashes run one at a time, taken in turn from each user name's queue, so an
attacker's burst for one name delays another name's login by at most a hash per busy name."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import AsyncIterator

ADDRESS_FACTOR = 4  # an office shares one address behind its router
MAX_KEYS = 10000  # names and addresses remembered; a flood of new ones forgets the oldest, never the locks


@dataclass(frozen=True)
class Attempt:
    """One login in progress, counted against its user name and its address."""

    user_key: str
    address_key: str
    aid: int


class LoginThrottle:
    """Per user name (`max_failures` in `window_s`) and per address (four times that): attempts in progress and
    failed ones count; past the budget every attempt is refused at once for `lockout_s`."""

    def __init__(self, max_failures: int, window_s: float, lockout_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._attempts: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._locked: dict[str, float] = {}
        self._ids = itertools.count()

    def _limit(self, key: str) -> int:
        return self.max_failures * (ADDRESS_FACTOR if key.startswith("addr:") else 1)

    def _recent(self, key: str, now: float) -> deque[tuple[float, int]]:
        q = self._attempts.get(key)
        if q is None:
            q = self._attempts[key] = deque()
        while q and q[0][0] < now - self.window_s:
            q.popleft()
        return q

    def wait_s(self, *keys: str) -> float:
        """Seconds until these keys may try again (0 = now)."""
        now = time.monotonic()
        return max([0.0] + [until - now for k in keys if (until := self._locked.get(k, 0.0)) > now])

    def begin(self, user_key: str, address_key: str) -> Attempt | float:
        """The attempt, counted now; or the seconds to wait (nothing counted, no hash to run)."""
        wait = self.wait_s(user_key, address_key)
        if wait > 0:
            return wait
        now = time.monotonic()
        keys = (user_key, address_key)
        queues = [self._recent(k, now) for k in keys]
        full = [k for k, q in zip(keys, queues) if len(q) >= self._limit(k)]
        if full:
            for k in full:
                self._locked[k] = now + self.lockout_s
                self._attempts.pop(k, None)  # a fresh budget once the pause is over
            return float(self.lockout_s)
        attempt = Attempt(user_key, address_key, next(self._ids))
        for q in queues:
            q.append((now, attempt.aid))
        self._bound(now)
        return attempt

    def succeeded(self, attempt: Attempt) -> None:
        """The right password: the name's failures are forgiven; the address keeps them, minus this attempt."""
        self._attempts.pop(attempt.user_key, None)
        self._locked.pop(attempt.user_key, None)
        q = self._attempts.get(attempt.address_key)
        if q is not None:
            for item in q:
                if item[1] == attempt.aid:
                    q.remove(item)
                    break

    def _bound(self, now: float) -> None:
        if len(self._attempts) <= MAX_KEYS:
            return
        for k in [k for k, q in self._attempts.items() if not q or q[-1][0] < now - self.window_s]:
            del self._attempts[k]
        while len(self._attempts) > MAX_KEYS:
            self._attempts.popitem(last=False)
        for k in [k for k, until in self._locked.items() if until <= now]:
            del self._locked[k]


class HashTurns:
    """One password hash at a time (each costs 16 MB), handed out round-robin over user names."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._busy = False

    @contextlib.asynccontextmanager
    async def turn(self, name: str) -> AsyncIterator[None]:
        if self._busy:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(name, deque()).append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():  # given the turn, then cancelled: hand it on
                    self._next()
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._next()

    def _next(self) -> None:
        while self._waiting:
            name, q = next(iter(self._waiting.items()))
            fut = q.popleft()
            if q:
                self._waiting.move_to_end(name)
            else:
                del self._waiting[name]
            if not fut.done():
                fut.set_result(None)
                return
        self._busy = False
