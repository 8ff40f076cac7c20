"""The console's aiohttp app on the agent's loop: login, sessions, CSRF, roles, pages, security headers."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import quote

import jinja2
from aiohttp import web
from markupsafe import Markup

from agent.driver import Context, Emittable
from drivers.broadcast import api as broadcast
from drivers.console.accounts import Accounts, User
from drivers.console.audit import Audit
from drivers.console.cli import sessions_path, users_path
from drivers.console.config import ConsoleConfig
from drivers.console.confirm import Confirmations
from drivers.console.feed import Feed
from drivers.console.i18n import Lang, detail, fmt_dt, translate
from drivers.console.kdf import PasswordChecker
from drivers.console.refused_logins import RefusedLogins
from drivers.console.safeurl import local_path
from drivers.console.sessions import Session, Sessions, account_mark
from drivers.console.throttle import Attempt, HashTurns, LoginThrottle
from drivers.registry import label

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "ca_session"
LOGIN_COOKIE = "ca_login"
LANG_COOKIE = "ca_lang"
PUBLIC = ("/login", "/static/", "/lang", "/favicon.ico")  # /lang checks its own CSRF token (logged out too)
TECH_ONLY = "/tech"
MAX_PREVIEWS = 200
# where a shared fragment takes each viewer's CSRF token: "<" never comes out of escaped text, and the rest
# changes with every start
CSRF_MARK = Markup(f"<csrf {secrets.token_hex(8)}>")
SQLITE_CACHE_KB = 512  # per connection; SQLite's default of 2 MB is a tenth of the console's memory budget
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class ConsoleContext(Context, Protocol):
    """The extras the supervisor gives the console: commands as a local client, the whole config, the emit tap."""

    async def call_command(self, name: str, args: dict[str, Any], source: str) -> dict[str, Any]: ...

    @property
    def agent_config(self) -> Any: ...

    def tap(self, listener: Callable[[str, tuple[Emittable, ...]], None]) -> Callable[[], None]: ...


CONSOLE: web.AppKey[Console] = web.AppKey("console")


class Console:
    """State shared by the pages: accounts, sessions, throttle, audit, feed, the broadcast store."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.cfg: ConsoleConfig = ctx.config
        self.tz = ctx.timezone
        self.agent_cfg = ctx.agent_config
        self.root_dir = Path(self.agent_cfg.data_dir)
        self.accounts = Accounts(users_path(self.agent_cfg))
        self.sessions = Sessions(self.cfg.session_lifetime_s, sessions_path(self.agent_cfg), self.cfg.max_sessions,
                                 self._mark_of, ctx.log, ctx.count, per_user=self.cfg.max_sessions_per_user)
        self.throttle = LoginThrottle(self.cfg.login_max_failures, self.cfg.login_window_s, self.cfg.login_lockout_s)
        self.hash_turns = HashTurns()
        self.passwords = PasswordChecker()
        self.refused = RefusedLogins()
        self._refused_noted = asyncio.Event()
        self.confirmations = Confirmations()
        self.audit = Audit(ctx.data_dir / "console.db", ctx)
        self.feed = Feed()
        self.uploads = ctx.data_dir / "uploads"
        self.previews: OrderedDict[str, Path] = OrderedDict()
        self.broadcast = getattr(self.agent_cfg, "broadcast", None)
        self._store: broadcast.StoreView | None = None
        self._bulletins: tuple[int, list[broadcast.BulletinRecord]] | None = None
        self._fragments: dict[str, tuple[Any, str]] = {}
        self.jinja = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                        undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True,
                                        auto_reload=False)

    def _mark_of(self, name: str) -> str | None:
        user = self.accounts.get(name)
        return account_mark(user.password_hash) if user else None

    async def check_password(self, username: str, password: str) -> User | None:
        """One scrypt at a time, in a child process: 20 logins at once must not cost 20 × 16 MB."""
        async with self.hash_turns.turn(username):
            user = self.accounts.get(username)
            ok = await self.passwords.check(password, user.password_hash if user else None)
        return user if ok else None

    def login_refused(self, request: web.Request, username: str, reason: str) -> None:
        """Counted now, audited as one sum per address and window (report_refusals)."""
        self.refused.add(request.remote, username, reason)
        self._refused_noted.set()

    async def report_refusals(self) -> None:
        """One audit row and COC event per address per `login_audit_window_s`, however many were refused."""
        while True:
            await self._refused_noted.wait()
            await asyncio.sleep(self.cfg.login_audit_window_s)
            self._refused_noted.clear()
            await self.flush_refusals()

    async def flush_refusals(self) -> None:
        for address, tally in self.refused.take():
            await self.audit.record("?", None, "login_refused", None, False, tally.detail(), address)

    @property
    def store(self) -> broadcast.StoreView | None:
        """The broadcast family's store (schedule and as-run), read-only through its face; None without broadcast."""
        if self._store is None and self.broadcast is not None:
            self._store = broadcast.open_view(self.root_dir, SQLITE_CACHE_KB)
        return self._store

    def store_key(self) -> int:
        """Changes whenever the store does (the console never writes to it: its changes go through commands)."""
        assert self.store is not None
        return self.store.version()

    def bulletins(self) -> list[broadcast.BulletinRecord]:
        """The active bulletins, parsed again only when the store changed."""
        assert self.store is not None
        key = self.store_key()
        if self._bulletins is None or self._bulletins[0] != key:
            self._bulletins = (key, self.store.active())
        return self._bulletins[1]

    def zones(self) -> list[str]:
        return list(self.broadcast.zones) if self.broadcast is not None else []

    def add_preview(self, path: Path) -> str:
        token = secrets.token_urlsafe(16)
        self.previews[token] = path
        while len(self.previews) > MAX_PREVIEWS:
            self.previews.popitem(last=False)
        return token

    # ---- rendering -----------------------------------------------------------------------------------------
    def render(self, request: web.Request, template: str, status: int = 200, **kw: Any) -> web.Response:
        lang: Lang = request.get("lang", self.cfg.language)
        session: Session | None = request.get("session")

        def t(key: str, **fmt: Any) -> str:
            return translate(lang, key, **fmt)

        html = self.jinja.get_template(template).render(
            t=t, lang=lang, session=session, csrf=session.csrf if session else "", path=request.path,
            lang_csrf=session.csrf if session else request.get("login_csrf"),
            dt=lambda ts, seconds=False: fmt_dt(ts, self.tz, seconds), refresh_s=self.cfg.refresh_s,
            detail=lambda doc: detail(lang, doc), label=lambda name: label(name, lang),
            site=getattr(self.agent_cfg.site, "name", "") or self.agent_cfg.site.site_id, flash=request.get("flash"),
            automations=getattr(self.agent_cfg, "automations", None) is not None,
            signboard=getattr(self.agent_cfg, "signboard", None) is not None, **kw)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def fragment(self, request: web.Request, template: str, key: Any, **kw: Any) -> Markup:
        """A page part rendered once per key and shared by every session (its CSRF token put in per request)."""
        lang: Lang = request.get("lang", self.cfg.language)
        cached = self._fragments.get(template)
        if cached is None or cached[0] != (key, lang):
            def t(k: str, **fmt: Any) -> str:
                return translate(lang, k, **fmt)

            html = self.jinja.get_template(template).render(
                t=t, lang=lang, csrf=CSRF_MARK, dt=lambda ts, seconds=False: fmt_dt(ts, self.tz, seconds), **kw)
            cached = ((key, lang), html)
            self._fragments[template] = cached
        session: Session | None = request.get("session")
        return Markup(cached[1].replace(CSRF_MARK, session.csrf if session else ""))

    def fragment_fresh(self, template: str, key: Any, lang: Lang) -> bool:
        cached = self._fragments.get(template)
        return cached is not None and cached[0] == (key, lang)

    def error(self, request: web.Request, status: int, key: str) -> web.Response:
        return self.render(request, "error.html", status=status, message_key=key)

    async def command(self, request: web.Request, args: dict[str, Any]) -> dict[str, Any]:
        session: Session = request["session"]
        return await self.ctx.call_command(broadcast.COMMAND, args, source=f"console:{session.user}")

    async def record(self, request: web.Request, action: str, target: str | None, ok: bool,
                     detail: str | None = None) -> None:
        session: Session | None = request.get("session")
        await self.audit.record(session.user if session else request.get("login_user", "?"),
                                session.role if session else None, action, target, ok, detail, request.remote)


def _lang(request: web.Request, default: Lang) -> Lang:
    v = request.cookies.get(LANG_COOKIE)
    return v if v in ("vi", "en") else default  # type: ignore[return-value]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Nothing but the login page and static files without a session; technician pages need the role; CSRF."""
    c = request.app[CONSOLE]
    request["lang"] = _lang(request, c.cfg.language)
    sid = request.cookies.get(SESSION_COOKIE)
    session = c.sessions.get(sid)
    if session is not None:
        user = c.accounts.get(session.user)
        if user is None:
            c.sessions.drop(sid)
            session = None
        else:
            session.role = user.role
    if c.sessions.dirty:  # an expired or revoked session leaves the file too
        await c.sessions.save()
    request["session"] = session
    public = request.path == "/login" or request.path.startswith(PUBLIC)
    try:
        if not public:
            if session is None:
                c.ctx.count("unauthenticated")
                if request.method == "GET":
                    raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe=""))
                return _secure(c.error(request, 401, "csrf"))
            if request.path.startswith(TECH_ONLY) and session.role != "technician":
                c.ctx.count("forbidden")
                return _secure(c.error(request, 403, "forbidden"))
            if request.method == "POST":
                form = await request.post()
                if not Sessions.csrf_ok(session, form.get("csrf")):
                    c.ctx.count("csrf_refused")
                    c.ctx.log.warning("csrf_refused", user=session.user, path=request.path)
                    return _secure(c.error(request, 403, "csrf"))
        response = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        c.ctx.count("too_large")
        return _secure(c.error(request, 413, "too_large"))
    except web.HTTPNotFound:
        return _secure(c.error(request, 404, "not_found"))
    except web.HTTPMethodNotAllowed:
        return _secure(c.error(request, 405, "not_found"))
    return _secure(response)


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    if response.content_type == "text/html":
        h.setdefault("Cache-Control", "no-store")
    return response


def set_cookie(c: Console, response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Strict", path="/",
                        secure=c.cfg.tls_cert_file is not None)


# ---- login ---------------------------------------------------------------------------------------------------
async def login_page(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if request["session"] is not None:
        raise web.HTTPSeeOther("/")
    return _login_form(c, request, None, "")


def _login_form(c: Console, request: web.Request, error: str | None, username: str,
                status: int = 200) -> web.Response:
    # reuse the browser's token: a second GET (favicon, another tab) must not void the form already shown
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
        token = secrets.token_urlsafe(24)
    request["login_csrf"] = token
    resp = c.render(request, "login.html", status=status, login_csrf=token, error=error, username=username,
                    next=request.query.get("next", ""))
    set_cookie(c, resp, LOGIN_COOKIE, token, 1800)
    return resp


async def login_post(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    lang = request["lang"]
    form = await request.post()
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    token = form.get("csrf")
    if not cookie or not isinstance(token, str) or not secrets.compare_digest(cookie, token):
        c.ctx.count("csrf_refused")
        return c.error(request, 403, "csrf")
    username = str(form.get("username") or "").strip().lower()[:64]
    password = str(form.get("password") or "")[:1024]
    request["login_user"] = username
    # counted before the hash: guesses sent at once meet the same budget as guesses sent one by one
    attempt = c.throttle.begin(f"user:{username}", f"addr:{request.remote}")
    if not isinstance(attempt, Attempt):
        c.ctx.count("login_throttled")
        c.login_refused(request, username, "throttled")
        return _login_form(c, request, translate(lang, "login_throttled", s=int(attempt) + 1), username, 429)
    user = await c.check_password(username, password)
    if user is None:
        c.ctx.count("login_failed")
        c.login_refused(request, username, "failed")
        return _login_form(c, request, translate(lang, "login_failed"), username, 401)
    c.throttle.succeeded(attempt)
    sid, session = c.sessions.create(user.name, user.role, user.password_hash)
    await c.sessions.save()
    request["session"] = session
    await c.record(request, "login", user.name, True)
    resp = web.HTTPSeeOther(local_path(str(form.get("next") or "/")))
    set_cookie(c, resp, SESSION_COOKIE, sid, c.cfg.session_lifetime_s)
    resp.del_cookie(LOGIN_COOKIE, path="/")
    raise resp


async def logout(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    await c.record(request, "logout", None, True)
    c.sessions.drop(request.cookies.get(SESSION_COOKIE))
    await c.sessions.save()
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


async def set_lang(request: web.Request) -> web.StreamResponse:
    """A form (POST) with the session's CSRF token, or the login form's when logged out: a link elsewhere
    cannot switch anyone's language."""
    c = request.app[CONSOLE]
    form = await request.post()
    session: Session | None = request["session"]
    token = form.get("csrf")
    if session is not None:
        ok = Sessions.csrf_ok(session, token)
    else:
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        ok = bool(cookie) and isinstance(token, str) and secrets.compare_digest(cookie, token)
    if not ok:
        c.ctx.count("csrf_refused")
        return c.error(request, 403, "csrf")
    lang = form.get("to")
    resp = web.HTTPSeeOther(local_path(str(form.get("next") or "/")))
    set_cookie(c, resp, LANG_COOKIE, lang if lang in ("vi", "en") else "vi", 365 * 86400)
    raise resp


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/bulletins")


def build_app(c: Console) -> web.Application:
    from drivers.console import (
        pages_automations,
        pages_bulletins,
        pages_lexicon,
        pages_proof,
        pages_signboard,
        pages_status,
    )

    app = web.Application(middlewares=[guard], client_max_size=(c.cfg.max_upload_mb + 1) * 1024 * 1024)
    app[CONSOLE] = c
    r = app.router
    r.add_get("/", home)
    r.add_get("/login", login_page)
    r.add_post("/login", login_post)
    r.add_post("/logout", logout)
    r.add_post("/lang", set_lang)
    r.add_get("/favicon.ico", favicon)
    r.add_static("/static/", HERE / "static", append_version=False)
    pages_bulletins.add_routes(r)
    pages_proof.add_routes(r)
    pages_status.add_routes(r)
    pages_automations.add_routes(r)
    pages_lexicon.add_routes(r)
    pages_signboard.add_routes(r)
    return app
