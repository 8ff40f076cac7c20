"""HTTP push to an IP speaker: POST audio/basic (µ-law 8 kHz) with digest auth, as Axis speakers accept."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

from agent.section import read_secret
from drivers.broadcast.audio import Audio
from drivers.broadcast.config import HttpZone
from drivers.broadcast.outputs import OutputError, PlayResult, digest, wait_until
from drivers.broadcast.track import Track, regroup

RATE = 8000
CHUNK_S = 0.1


class HttpPushOutput:
    def __init__(self, cfg: HttpZone) -> None:
        self.cfg = cfg

    def open(self, audio: Audio | Track) -> HttpPushSession:
        return HttpPushSession(self.cfg, Track.of(audio))


class HttpPushSession:
    """The digest challenge is fetched ahead of airtime with an empty POST, as curl --digest does."""

    def __init__(self, cfg: HttpZone, audio: Track) -> None:
        self.cfg = cfg
        self.audio = audio  # µ-law made as it is sent, never the whole body at once
        url = urlsplit(cfg.url)
        self.where = f"{url.hostname}:{url.port or ''}{url.path}"
        self.path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(url.hostname or "", url.port, timeout=cfg.timeout_s)
        self.auth: str | None = None
        try:
            self._challenge()
            if self.conn.sock is None:
                self.conn.connect()
        except OSError as exc:
            self.conn.close()
            raise OutputError(f"http {self.where}: {exc.strerror or exc}") from None

    def _challenge(self) -> None:
        self.conn.request("POST", self.path, body=b"", headers={"Content-Type": "audio/basic"})
        resp = self.conn.getresponse()
        resp.read()
        if resp.status != 401:
            return
        chal = digest.choose(digest.parse_challenges(resp.headers.get_all("WWW-Authenticate") or []))
        if chal is None:
            raise OutputError(f"http {self.where}: speaker asks for an authentication we do not speak")
        if not self.cfg.username:
            raise OutputError(f"http {self.where}: speaker wants a login; set username and password_file")
        password = read_secret(self.cfg.password_file) or ""
        self.auth = digest.authorization(chal, "POST", self.path, self.cfg.username, password)

    def play(self, deadline: float, cancel: threading.Event) -> PlayResult:
        if not wait_until(deadline, cancel):
            now = time.time()
            return PlayResult(now, now, True)
        headers = {"Content-Type": "audio/basic", "Content-Length": str(self.audio.ulaw_bytes(RATE))}
        if self.auth:
            headers["Authorization"] = self.auth
        step = int(RATE * CHUNK_S)
        start = time.monotonic()
        started = time.time()
        try:
            self.conn.putrequest("POST", self.path, skip_accept_encoding=True)
            for k, v in headers.items():
                self.conn.putheader(k, v)
            self.conn.endheaders()
            # sent at the rate it plays, so the speaker's buffer neither starves nor overflows
            for i, chunk in enumerate(regroup(self.audio.ulaw(RATE), step)):
                if not wait_until(start + i * CHUNK_S, cancel):
                    return PlayResult(started, time.time(), True)
                self.conn.send(chunk)
            resp = self.conn.getresponse()
            resp.read()
        except OSError as exc:
            raise OutputError(f"http {self.where}: {exc.strerror or exc}") from None
        if resp.status == 401:
            raise OutputError(f"http {self.where}: speaker rejected the login (HTTP 401)")
        if resp.status >= 300:
            raise OutputError(f"http {self.where}: speaker answered HTTP {resp.status} {resp.reason}")
        return PlayResult(started, time.time(), False)

    def close(self) -> None:
        self.conn.close()
