"""The public signboards for officials: the notices on the boards (write one, or put a bulletin's text up; take
one down) and the leaders' weekly work schedule (lịch công tác của lãnh đạo xã) as an editable table. Every change
goes through the `signboard` command and is audited; a bad line is named in Vietnamese before anything is sent."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from drivers.console.i18n import translate
from drivers.console.server import CONSOLE, Console
from drivers.signboard import api as signboard

BLANK_ROWS = 3
FIELDS = ("day", "time", "what", "who", "where")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/signboard", page)
    r.add_post("/signboard/notice", notice)
    r.add_post("/signboard/notice/clear", clear)
    r.add_post("/signboard/schedule", schedule)


def _section(c: Console) -> Any:
    return getattr(c.agent_cfg, signboard.SECTION, None)


def _render(c: Console, request: web.Request, status: int = 200, **kw: Any) -> web.Response:
    section = _section(c)
    doc = signboard.live_state(c.root_dir) or {}
    rows = kw.pop("rows", None)
    if rows is None:
        rows = [{k: str(e.get(k) or "") for k in FIELDS} for e in doc.get("schedule") or []]
        rows += [{k: "" for k in FIELDS} for _ in range(BLANK_ROWS)]
    urls = signboard.board_urls(c.root_dir, request.host.rpartition(":")[0] or request.host, section.port) \
        if request["session"].role == "technician" else {}
    bulletins = [b.bulletin for b in c.bulletins()] if c.broadcast is not None else []
    boards = [{"id": n, "label": b.label or n, "type": b.type, "url": urls.get(n),
               **((doc.get("boards") or {}).get(n) or {})} for n, b in section.boards.items()]
    return c.render(request, "signboard.html", status=status, notices=doc.get("notices") or [], rows=rows,
                    days=signboard.DAYS_VI, boards=boards, bulletins=[b for b in bulletins if b.text],
                    schedule_by=doc.get("schedule_by"), schedule_updated=doc.get("schedule_updated"),
                    errors=kw.pop("errors", {}), values=kw.pop("values", {}), done=request.query.get("done"), **kw)


async def page(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if _section(c) is None:
        return c.render(request, "error.html", status=404, message_key="no_signboard")
    return _render(c, request)


def _vi(lang: str, exc: signboard.ContentError) -> str:
    """The refusal as the official reads it: which line, which box, what is wrong."""
    where = translate(lang, f"sb_f_{exc.field}") if exc.field else ""
    if exc.line is not None:
        where = translate(lang, "sb_line", n=exc.line) + (f", {where}" if where else "")
    problem = translate(lang, f"sb_e_{exc.code}")
    return f"{where}: {problem}" if where else problem


async def _command(request: web.Request, args: dict[str, Any], audit: str, target: str | None,
                   detail: str | None) -> dict[str, Any]:
    c = request.app[CONSOLE]
    out = await c.ctx.call_command(signboard.COMMAND, args, source=f"console:{request['session'].user}")
    await c.record(request, audit, target, bool(out.get("ok")), out.get("error") or detail)
    return out


async def notice(request: web.Request) -> web.StreamResponse:
    """A notice written for the boards, or a bulletin's text put up."""
    c = request.app[CONSOLE]
    section = _section(c)
    if section is None:
        raise web.HTTPNotFound()
    lang = request["lang"]
    form = await request.post()
    values = {k: str(form.get(k, ""))[:section.notice_max_chars + 100] for k in ("title", "text", "bulletin")}
    chosen = [str(b) for b in form.getall("boards", []) if str(b) in section.boards]
    args: dict[str, Any] = {"action": "show", "boards": chosen or None}
    if values["bulletin"]:
        args.update(bulletin=values["bulletin"], title=values["title"] or None)
    else:
        args.update(text=values["text"], title=values["title"] or None)
        try:
            signboard.check_notice(args, list(section.boards), section.notice_max_chars, "console")
        except signboard.ContentError as exc:
            c.ctx.count("form_invalid")
            return _render(c, request, status=422, values=values, errors={"notice": _vi(lang, exc)})
    out = await _command(request, args, "signboard_show", values["bulletin"] or None, values["text"][:200])
    if not out.get("ok"):
        return _render(c, request, status=422, values=values,
                       errors={"notice": translate(lang, "refused", e=str(out.get("error")))})
    raise web.HTTPSeeOther("/signboard?done=shown")


async def clear(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if _section(c) is None:
        raise web.HTTPNotFound()
    form = await request.post()
    nid = str(form.get("id", ""))[:64] or None
    out = await _command(request, {"action": "clear", "id": nid}, "signboard_clear", nid, None)
    if not out.get("ok"):
        return c.render(request, "error.html", status=422, message_key="refused", message_arg=out.get("error"))
    raise web.HTTPSeeOther("/signboard?done=cleared")


async def schedule(request: web.Request) -> web.StreamResponse:
    """The whole week at once: rows left blank are dropped, the first bad row is named."""
    c = request.app[CONSOLE]
    if _section(c) is None:
        raise web.HTTPNotFound()
    lang = request["lang"]
    form = await request.post()
    columns = {k: [str(v)[:400] for v in form.getall(k, [])] for k in FIELDS}
    n = max((len(v) for v in columns.values()), default=0)
    rows = [{k: (columns[k][i] if i < len(columns[k]) else "") for k in FIELDS} for i in range(n)]
    kept = [i for i, r in enumerate(rows) if any(r[k].strip() for k in ("time", "what", "who", "where"))]
    entries = [rows[i] for i in kept]
    try:
        signboard.check_entries(entries)
    except signboard.ContentError as exc:
        c.ctx.count("form_invalid")
        if exc.line is not None:
            exc.line = kept[exc.line - 1] + 1  # the row as the official sees it, blank rows counted
        return _render(c, request, status=422, rows=rows, errors={"schedule": _vi(lang, exc)})
    out = await _command(request, {"action": "schedule", "entries": entries}, "signboard_schedule", None,
                         f"{len(entries)} lines")
    if not out.get("ok"):
        return _render(c, request, status=422, rows=rows,
                       errors={"schedule": translate(lang, "refused", e=str(out.get("error")))})
    raise web.HTTPSeeOther("/signboard?done=schedule")
