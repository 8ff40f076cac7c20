"""The emergency's second step, enforced by the server: a confirmation bound to the exact content and session.

Step one (write) hands out a token: an HMAC, under a key that lives only in this process, of the content as
it will air, the session, an expiry and a nonce. Step two (air) airs only with a token that matches what is
posted, within its expiry, used once."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Iterable

EXPIRY_S = 600.0  # from the confirmation page to the button
MAX_OPEN = 1000  # tokens handed out and not used yet; the oldest are forgotten past it


def content_of(title: str, text: str, zones: Iterable[str]) -> str:
    """The content a confirmation covers, as it will air (line ends as a browser posts them either way)."""
    norm = text.replace("\r\n", "\n").replace("\r", "\n")
    return json.dumps([title.strip(), norm, sorted(set(zones))], ensure_ascii=False)


class Confirmations:
    """Tokens "nonce.expiry.mac" for one running console."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._open: dict[str, float] = {}

    def _mac(self, session: str, content: str, nonce: str, expires: int) -> str:
        msg = json.dumps([session, content, nonce, expires], ensure_ascii=False).encode("utf-8")
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def issue(self, session: str, content: str) -> str:
        now = time.time()
        for n in [n for n, until in self._open.items() if until <= now]:
            del self._open[n]
        while len(self._open) >= MAX_OPEN:
            del self._open[next(iter(self._open))]
        nonce = secrets.token_urlsafe(12)
        expires = int(now + EXPIRY_S)
        self._open[nonce] = expires
        return f"{nonce}.{expires}.{self._mac(session, content, nonce, expires)}"

    def redeem(self, token: object, session: str, content: str) -> bool:
        """True once for a token issued to this session for exactly this content and not expired."""
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 200:
            return False
        nonce, expires_s, mac = token.split(".")
        if not expires_s.isdigit() or nonce not in self._open:
            return False
        expires = int(expires_s)
        if not hmac.compare_digest(mac, self._mac(session, content, nonce, expires)):
            return False
        del self._open[nonce]
        return expires > time.time()
