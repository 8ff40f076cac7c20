"""The board pages' own small web server: only /b/<board secret> (the page), its event stream and its two static
files answer; anything else is 404. No login: the secret in the address is the key, compared in constant time."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
from html import escape
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from agent.statefile import read_json, write_json

HERE = Path(__file__).resolve().parent
STATIC = {"board.js": "application/javascript", "board.css": "text/css"}
SECRETS_FILE = "secrets.json"
RETRY_MS = 2000
KEEPALIVE_S = 15.0
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE = """<!doctype html>
<html lang="vi">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="{base}/board.css"><script src="{base}/board.js" defer></script>
</head>
<body><div id="board" data-version="0"><header id="bar"><span id="site">{title}</span><span id="now"></span></header>
<main id="stage"><section id="page" class="page"></section></main><div id="link" class="link-ok"></div></div>
</body>
</html>
"""


def load_secrets(path: Path, boards: list[str]) -> dict[str, str]:
    """Each board's secret, made once and kept (0600) so the address a screen was set up with keeps working."""
    saved = read_json(path)
    known = {k: v for k, v in saved.items() if isinstance(v, str)} if isinstance(saved, dict) else {}
    missing = [b for b in boards if b not in known]
    for b in missing:
        known[b] = secrets.token_urlsafe(18)
    if missing or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, known)
        path.chmod(0o600)
    return {b: known[b] for b in boards}


class Hub:
    """The latest document per board and a condition the streams wait on."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Condition()
        self.clients = 0
        self.closing = False

    async def close(self) -> None:
        """Ends every stream (the pages reconnect to whoever serves next)."""
        async with self.changed:
            self.closing = True
            self.changed.notify_all()

    async def publish(self, docs: dict[str, dict[str, Any]]) -> None:
        async with self.changed:
            self.docs = docs
            self.changed.notify_all()


class BoardServer:
    """Serves the boards; `count` takes bad secrets and refused streams."""

    def __init__(self, hub: Hub, board_secrets: dict[str, str], site: str, max_clients: int,
                 count: Callable[[str], None]) -> None:
        self.hub, self.secrets, self.site, self.max_clients, self.count = hub, board_secrets, site, max_clients, count
        self.statics = {name: (HERE / "static" / name).read_bytes() for name in STATIC}

    def board_of(self, secret: str) -> str | None:
        """Every board's secret is compared, whichever matches: the time taken says nothing about the secrets."""
        found = None
        given = secret.encode()
        for board, s in self.secrets.items():
            if hmac.compare_digest(given, s.encode()):
                found = board
        return found

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/b/{secret}", self.page)
        app.router.add_get("/b/{secret}/events", self.events)
        app.router.add_get("/b/{secret}/{asset}", self.asset)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status == 404 and not request.get("counted"):
                self.count("not_found")
            response = web.Response(status=exc.status, text=exc.reason)
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Cache-Control", "no-store")
        return response

    def _news(self, board: str, sent: dict[str, Any] | None) -> bool:
        return self.hub.closing or self.hub.docs.get(board) is not sent

    def _board(self, request: web.Request) -> str:
        board = self.board_of(request.match_info["secret"])
        if board is None:
            self.count("bad_secret")
            request["counted"] = True
            raise web.HTTPNotFound()
        return board

    async def page(self, request: web.Request) -> web.StreamResponse:
        self._board(request)
        base = f"/b/{request.match_info['secret']}"
        return web.Response(text=PAGE.format(title=escape(self.site), base=base), content_type="text/html",
                            charset="utf-8")

    async def asset(self, request: web.Request) -> web.StreamResponse:
        self._board(request)
        name = request.match_info["asset"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=self.statics[name], content_type=STATIC[name],
                            headers={"Cache-Control": "no-cache"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The board's whole state on connect and after every change; a comment now and then keeps it open."""
        board = self._board(request)
        if self.hub.clients >= self.max_clients:
            self.count("clients_refused")
            raise web.HTTPServiceUnavailable()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        self.hub.clients += 1
        try:
            await resp.write(f"retry: {RETRY_MS}\n\n".encode())
            sent: dict[str, Any] | None = None
            while not self.hub.closing:
                doc = self.hub.docs.get(board)
                if doc is not None and doc is not sent:
                    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
                    await resp.write(f"event: state\ndata: {data}\n\n".encode())
                    sent = doc
                async with self.hub.changed:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(KEEPALIVE_S):
                            await self.hub.changed.wait_for(lambda s=sent: self._news(board, s))
                if self.hub.docs.get(board) is sent and not self.hub.closing:
                    await resp.write(b": keepalive\n\n")
        except ConnectionResetError:
            pass
        finally:
            self.hub.clients -= 1
        return resp
