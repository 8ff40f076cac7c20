"""scrypt password hashes. Run as a script it checks one password in its own short-lived process.

A login's scrypt needs 16 MB; computed in the agent, the allocator keeps that memory for good (one
copy per thread). In a child process (`python -I kdf.py`, stdlib only) it is returned at exit.
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


async def check_in_child(password: str, stored: str | None) -> bool:
    """check_password in a child process; the password goes through a pipe, never the command line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", str(Path(__file__).resolve()), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(CHILD_TIMEOUT_S):
            out, _ = await proc.communicate(json.dumps({"password": password, "hash": stored}).encode())
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode == 0 and out.strip() == b"1"


def main() -> int:
    req = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    stored = req.get("hash")
    ok = check_password(str(req.get("password", "")), stored if isinstance(stored, str) else None)
    sys.stdout.write("1" if ok else "0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
