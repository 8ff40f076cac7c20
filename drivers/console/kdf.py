"""scrypt password hashes. Run as a script it checks passwords, one JSON line in, one answer line out.

A login's scrypt needs 16 MB; computed in the agent, the allocator keeps that memory for good (one
copy per thread). In a child process (`python -I kdf.py`, stdlib only) it is returned at exit: the child
stays while logins come (a burst pays one interpreter start) and is closed once they stop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import sys
from pathlib import Path

# cost: ~16 MB and ~50 ms per hash on a small box; stored with each hash so it can change later
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
DKLEN = 32
MAX_PASSWORD_BYTES = 1024
CHILD_TIMEOUT_S = 20.0
CHILD_IDLE_S = 30.0
MAX_LINE_BYTES = 4 * MAX_PASSWORD_BYTES * 6 + 4096  # a JSON request with the longest password, escaped


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=DKLEN)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(dk).decode()}"


# checked for a user name that does not exist: the same parameters, so the same single scrypt as a real check
_NO_USER = (f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${base64.b64encode(secrets.token_bytes(16)).decode()}$"
            f"{base64.b64encode(secrets.token_bytes(DKLEN)).decode()}")


def check_password(password: str, stored: str | None) -> bool:
    """Constant-time comparison against a stored hash; None (no such user) costs one scrypt too and never matches."""
    if stored is None:
        check_password(password, _NO_USER)
        return False
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(dk)
        if len(want) != DKLEN:  # a shortened hash would match on a prefix
            return False
        got = hashlib.scrypt(password.encode("utf-8")[:MAX_PASSWORD_BYTES], salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=DKLEN, maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


class PasswordChecker:
    """check_password in one child process kept for `idle_s` after the last check; the password goes through a
    pipe, never the command line. A child found dead is replaced at once; one that hangs past `timeout_s` is
    killed."""

    def __init__(self, idle_s: float = CHILD_IDLE_S, timeout_s: float = CHILD_TIMEOUT_S) -> None:
        self.idle_s, self.timeout_s = idle_s, timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self.starts = 0

    async def check(self, password: str, stored: str | None) -> bool:
        request = json.dumps({"password": password[:MAX_PASSWORD_BYTES], "hash": stored}).encode() + b"\n"
        async with self._lock:
            if self._idle is not None:
                self._idle.cancel()
            answer = b""
            for _ in range(2):  # a child that died since the last check is replaced once
                try:
                    async with asyncio.timeout(self.timeout_s):
                        answer = await self._ask(request)
                except ConnectionError:
                    answer = b""
                except BaseException:
                    await self.close()
                    raise
                if answer in (b"0", b"1"):
                    break
                await self.close()
            else:
                return False
            self._idle = asyncio.get_running_loop().call_later(self.idle_s, self._close_soon)
            return answer == b"1"

    async def _ask(self, request: bytes) -> bytes:
        proc = await self._child()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request)
        await proc.stdin.drain()
        return (await proc.stdout.readline()).strip()

    async def _child(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", str(Path(__file__).resolve()), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            self.starts += 1
        return self._proc

    def _close_soon(self) -> None:
        self._idle = None
        if not self._lock.locked():
            self._closing = asyncio.get_running_loop().create_task(self.close())

    async def close(self) -> None:
        """End the child (its 16 MB go back to the system); the next check starts another."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # at end of input the child exits by itself
        try:
            async with asyncio.timeout(2.0):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def main() -> int:
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line[:MAX_LINE_BYTES].decode("utf-8"))
            stored = req.get("hash")
            ok = check_password(str(req.get("password", "")), stored if isinstance(stored, str) else None)
        except (ValueError, AttributeError):
            ok = False
        sys.stdout.write("1\n" if ok else "0\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
