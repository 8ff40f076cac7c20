"""The pronunciation lexicon for officials: the words the radio says differently from how they are written, an
entry form with a preview of a sample sentence as it will be spoken, and deletion. Every change goes through the
`broadcast` command (action `lexicon`) and is audited."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from drivers.broadcast import api as broadcast
from drivers.console.i18n import translate
from drivers.console.server import CONSOLE, Console

SAMPLE_MAX = 2000
DEFAULT_SAMPLE = "UBND xã thông báo: từ 7h30 ngày 20/11, mực nước sông lên BĐ3, gọi 1800 6969."


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/lexicon", page)
    r.add_post("/lexicon", post)
    r.add_post("/lexicon/delete", delete)


def marked(c: Console, text: str, entries: dict[str, str]) -> list[broadcast.Piece]:
    """The text as the radio will read it, cut into pieces so the page can mark what was rewritten."""
    return broadcast.spoken_pieces(text, entries, c.broadcast.tts.region)


def _render(c: Console, request: web.Request, status: int = 200, **kw: Any) -> web.Response:
    doc = broadcast.lexicon(c.root_dir)
    values = {"written": "", "spoken": "", "sample": DEFAULT_SAMPLE, **kw.pop("values", {})}
    return c.render(request, "lexicon.html", status=status, doc=doc, entries=sorted(doc["entries"].items()),
                    values=values, errors=kw.pop("errors", {}), done=request.query.get("done"),
                    limit=broadcast.LEXICON_MAX_ENTRIES, **kw)


async def page(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.broadcast is None:
        return c.render(request, "error.html", status=404, message_key="no_broadcast")
    return _render(c, request)


async def post(request: web.Request) -> web.StreamResponse:
    """Preview a sample with the entry (nothing saved) or save the entry."""
    c = request.app[CONSOLE]
    if c.broadcast is None:
        raise web.HTTPNotFound()
    lang = request["lang"]
    form = await request.post()
    values = {k: str(form.get(k, ""))[:SAMPLE_MAX if k == "sample" else 200] for k in ("written", "spoken", "sample")}
    doc = broadcast.lexicon(c.root_dir)
    entries = dict(doc["entries"])
    errors: dict[str, str] = {}
    if values["written"].strip() or values["spoken"].strip():
        try:
            entries.update(broadcast.check_entries({values["written"]: values["spoken"]}, limit=1))
        except broadcast.LexiconError as exc:
            c.ctx.count("form_invalid")
            errors["written"] = translate(lang, "refused", e=str(exc))
    if form.get("do") != "save" or errors:
        pieces = marked(c, values["sample"], entries) if values["sample"].strip() else []
        return _render(c, request, status=422 if errors else 200, values=values, errors=errors, pieces=pieces)
    new = {values["written"].strip(): values["spoken"].strip()}
    out = await c.command(request, {"action": "lexicon", "op": "set", "entries": new, "if_version": doc["version"]})
    await c.record(request, "lexicon_set", values["written"].strip(), bool(out.get("ok")),
                   out.get("error") or json.dumps(new, ensure_ascii=False))
    if not out.get("ok"):
        errors["written"] = translate(lang, "refused", e=str(out.get("error")))
        return _render(c, request, status=422, values=values, errors=errors)
    raise web.HTTPSeeOther("/lexicon?done=saved")


async def delete(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.broadcast is None:
        raise web.HTTPNotFound()
    form = await request.post()
    written = str(form.get("written", ""))[:200]
    out = await c.command(request, {"action": "lexicon", "op": "delete", "written": [written]})
    await c.record(request, "lexicon_delete", written, bool(out.get("ok")), out.get("error"))
    if not out.get("ok"):
        return c.render(request, "error.html", status=422, message_key="refused", message_arg=out.get("error"))
    raise web.HTTPSeeOther("/lexicon?done=deleted")
