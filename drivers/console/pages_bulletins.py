"""Bulletin pages: list, 7-day calendar, create/edit with preview and upload, play now, cancel, emergency."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from drivers.broadcast import api as broadcast
from drivers.console import pages_lexicon
from drivers.console.accounts import release_memory
from drivers.console.confirm import content_of
from drivers.console.forms import FormResult, blank_values, form_values, parse_form, slug
from drivers.console.i18n import translate
from drivers.console.server import CONSOLE, Console
from drivers.console.upload import SUFFIXES, UploadError, find_recording, store_recording

LIST_REFRESH_S = 20  # the bulletin list is recomputed at least this often (next airings move with time)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/bulletins", bulletin_list)
    r.add_get("/calendar", calendar)
    r.add_get("/bulletins/new", new_form)
    r.add_post("/bulletins/new", submit)
    r.add_get("/bulletins/{id}/edit", edit_form)
    r.add_post("/bulletins/{id}/edit", submit)
    r.add_post("/bulletins/{id}/cancel", cancel)
    r.add_post("/bulletins/{id}/play", play)
    r.add_get("/audio/{token}.wav", preview_audio)
    r.add_get("/emergency", emergency_form)
    r.add_post("/emergency", emergency_post)


def _state(c: Console) -> dict[str, Any]:
    data = broadcast.live_state(c.root_dir)
    bulletins = data.get("bulletins") if data is not None else None
    return bulletins if isinstance(bulletins, dict) else {}


def _no_broadcast(c: Console, request: web.Request) -> web.Response:
    return c.render(request, "error.html", status=404, message_key="no_broadcast")


async def bulletin_list(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.store is None:
        return _no_broadcast(c, request)
    live = _state(c)
    now = time.time()
    key = (c.store_key(), int(now // LIST_REFRESH_S), json.dumps(live, sort_keys=True, default=str))

    def rows() -> list[dict[str, Any]]:
        out = []
        for s in c.bulletins():
            b = s.bulletin
            info = live.get(b.id, {})
            dur = float(info.get("duration_s") or 0.0)
            upcoming = [a.scheduled for a in broadcast.next_airings(b, c.tz, max(s.cursor, now - 1), dur, 3)]
            out.append({"b": b, "source": s.source, "next": upcoming, "error": info.get("error"),
                        "zones": c.broadcast.zones_for(b.zones)})
        out.sort(key=lambda r: (r["next"][0] if r["next"] else float("inf"), r["b"].id))
        return out

    cards = c.fragment(request, "bulletin_cards.html", key, rows=Lazy(rows))
    return c.render(request, "bulletins.html", cards=cards, done=request.query.get("done"),
                    done_title=request.query.get("t", ""))


class Lazy:
    """Rows computed only when a fragment is rendered (not when it comes from the cache)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __iter__(self) -> Any:
        return iter(self.fn())


async def calendar(request: web.Request) -> web.StreamResponse:
    """Rows are formatted here, not in the template: 20 clients at once must stay well under 150 ms."""
    c = request.app[CONSOLE]
    if c.store is None:
        return _no_broadcast(c, request)
    lang = request["lang"]
    live = _state(c)
    day0 = datetime.now(c.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    key = (c.store_key(), day0, json.dumps({k: v.get("duration_s") for k, v in live.items()}, sort_keys=True))
    if c.fragment_fresh("calendar_days.html", key, lang):
        return c.render(request, "calendar.html", days_html=c.fragment(request, "calendar_days.html", key))
    days = [day0 + timedelta(days=i) for i in range(7)]
    end = (day0 + timedelta(days=7)).timestamp()
    slots: dict[str, list[tuple[float, str, str, str, str]]] = {d.strftime("%Y-%m-%d"): [] for d in days}
    for s in c.bulletins():
        b = s.bulletin
        dur = float(live.get(b.id, {}).get("duration_s") or 0.0)
        after = max(s.cursor, day0.timestamp() - 1)
        title = (b.title or b.id) + (f" (×{b.schedule.repeat})" if b.schedule.repeat > 1 else "")
        zones = ", ".join(c.broadcast.zones_for(b.zones))
        for a in broadcast.next_airings(b, c.tz, after, dur, 400, until=end):
            if a.repeat:
                continue
            when = datetime.fromtimestamp(a.scheduled, c.tz)
            day = when.strftime("%Y-%m-%d")
            if day in slots:
                slots[day].append((a.scheduled, when.strftime("%H:%M"), title, zones, b.priority))
    out = []
    for d in days:
        rows = sorted(slots[d.strftime("%Y-%m-%d")])
        out.append((f"{translate(lang, f'wdl{d.isoweekday()}')} {d.strftime('%d/%m/%Y')}", [r[1:] for r in rows]))
    # the same until the store, the day, the language or a duration changes
    return c.render(request, "calendar.html", days_html=c.fragment(request, "calendar_days.html", key, days=out))


def _form_page(c: Console, request: web.Request, values: dict[str, Any], errors: dict[str, str],
               editing: bool, preview: dict[str, Any] | None = None, refused: str | None = None,
               status: int = 200) -> web.Response:
    return c.render(request, "bulletin_form.html", status=status, v=values, errors=errors, editing=editing,
                    zones=c.zones(), preview=preview, refused=refused, suffixes=", ".join(SUFFIXES),
                    max_mb=c.cfg.max_upload_mb, recording_s=request.get("recording_s"))


async def new_form(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.store is None:
        return _no_broadcast(c, request)
    return _form_page(c, request, blank_values(c.tz), {}, editing=False)


async def edit_form(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.store is None:
        return _no_broadcast(c, request)
    stored = c.store.get(request.match_info["id"])
    if stored is None or stored.status != "active":
        raise web.HTTPNotFound()
    return _form_page(c, request, form_values(stored.bulletin, c.tz), {}, editing=True)


async def _recording(c: Console, request: web.Request, form: MultiDictProxy[Any],
                     errors: dict[str, str]) -> str | None:
    """The recording for this form: a new upload (decoded and levelled now) or the one uploaded before."""
    lang = request["lang"]
    field = form.get("recording")
    if isinstance(field, web.FileField) and field.filename:
        assert c.broadcast is not None
        try:  # streamed from aiohttp's spooled temp file to disk: never read whole into memory
            rec = await _in_thread(store_recording, field.file, field.filename, c.uploads, c.broadcast.tts,
                                   c.cfg.max_recording_s, c.cfg.max_upload_mb * 1024 * 1024)
        except UploadError as exc:
            c.ctx.count("upload_refused")
            c.ctx.log.warning("upload_refused", reason=str(exc), detail=exc.detail)
            limit = c.cfg.max_upload_mb if str(exc) == "e_file_size" else c.cfg.max_recording_s
            errors["recording"] = translate(lang, str(exc), m=limit)
            return None
        await _in_thread(release_memory)
        request["recording_s"] = round(rec.duration_s, 1)
        return rec.ref
    ref = form.get("audio_ref")
    if isinstance(ref, str) and ref and find_recording(c.uploads, ref) is not None:
        return ref
    return None


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)


def _field_of(error: str) -> str:
    """The form field a command error names ("bulletin: schedule.at: ..." → once_time)."""
    loc = error.split(": ", 2)[1] if error.count(": ") >= 2 else ""
    top = loc.split(".")[0]
    return {"schedule": "sched", "audio_file": "recording", "zones": "zones", "text": "text",
            "title": "title", "volume": "volume", "priority": "priority"}.get(top, "")


async def submit(request: web.Request) -> web.StreamResponse:
    """Preview or save, through the one `broadcast` command (validation and store shared with the COC)."""
    c = request.app[CONSOLE]
    if c.store is None:
        return _no_broadcast(c, request)
    lang = request["lang"]
    form = await request.post()
    editing = "id" in request.match_info
    errors: dict[str, str] = {}
    ref = await _recording(c, request, form, errors) if form.get("source") == "audio" else None
    audio_path = str(c.uploads / ref) if ref else None
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if editing:
        fields["id"] = request.match_info["id"]
    else:
        fields.pop("id", None)
    assert c.broadcast is not None
    result: FormResult = parse_form(fields, lambda k: [v for v in form.getall(k, []) if isinstance(v, str)],
                                    lambda k, **kw: translate(lang, k, **kw), c.tz, c.zones(),
                                    c.broadcast.tts.max_chars, audio_path)
    result.errors.update(errors)
    result.values["audio_ref"] = ref or ""
    if result.bulletin is None:
        c.ctx.count("form_invalid")
        return _form_page(c, request, result.values, result.errors, editing, status=422)
    if editing:
        result.values["id"] = result.bulletin["id"]
    if form.get("do") == "preview":
        return await _preview(c, request, result, editing)
    action = "update" if editing else "create"
    out = await c.command(request, {"action": action, "bulletin": result.bulletin})
    bid = result.bulletin["id"]
    if not out.get("ok"):
        err = str(out.get("error"))
        await c.record(request, f"bulletin_{action}", bid, False, err)
        field = _field_of(err)
        if field:
            result.errors[field] = translate(lang, "refused", e=err)
        return _form_page(c, request, result.values, result.errors, editing,
                          refused=None if field else translate(lang, "refused", e=err), status=422)
    await c.record(request, f"bulletin_{action}", bid, True, json.dumps(result.bulletin, ensure_ascii=False))
    raise web.HTTPSeeOther(f"/bulletins?done=saved&t={_q(result.bulletin['title'])}")


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:200], safe="")


async def _preview(c: Console, request: web.Request, result: FormResult, editing: bool) -> web.Response:
    lang = request["lang"]
    assert result.bulletin is not None
    out = await c.command(request, {"action": "preview", "bulletin": result.bulletin})
    await _in_thread(release_memory)  # the render's buffers, freed but kept by the allocator otherwise
    if not out.get("ok"):
        err = str(out.get("error"))
        key = "e_nothing" if "nothing to speak" in err else None
        result.errors["text" if result.values.get("source") != "audio" else "recording"] = (
            translate(lang, key) if key else translate(lang, "e_speak", e=err))
        return _form_page(c, request, result.values, result.errors, editing, status=422)
    token = c.add_preview(Path(out["wav"]))
    seconds = f"{float(out.get('duration_s') or 0):.1f}"
    text = result.bulletin.get("text")
    pieces = pages_lexicon.marked(c, text, broadcast.lexicon(c.root_dir)["entries"]) if text else []
    preview = {"spoken": out.get("spoken"), "pieces": pieces, "engine": out.get("engine"),
               "duration_s": seconds.replace(".", ",") if lang == "vi" else seconds,  # 5,3 giây in Vietnamese
               "url": f"/audio/{token}.wav"}
    return _form_page(c, request, result.values, {}, editing, preview=preview)


async def preview_audio(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    path = c.previews.get(request.match_info["token"])
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, max-age=600"})


async def _act(request: web.Request, action: str, audit: str) -> tuple[str, dict[str, Any]]:
    """Cancel or play a stored bulletin through the broadcast command and audit it: (title, result)."""
    c = request.app[CONSOLE]
    bid = request.match_info["id"]
    stored = c.store.get(bid) if c.store is not None else None
    out = await c.command(request, {"action": action, "id": bid})
    await c.record(request, audit, bid, bool(out.get("ok")), out.get("error"))
    return (stored.bulletin.title if stored else bid), out


def _refused(request: web.Request, out: dict[str, Any]) -> web.StreamResponse:
    return request.app[CONSOLE].render(request, "error.html", status=422, message_key="refused",
                                       message_arg=out.get("error"))


async def cancel(request: web.Request) -> web.StreamResponse:
    title, out = await _act(request, "cancel", "bulletin_cancel")
    if not out.get("ok"):
        return _refused(request, out)
    raise web.HTTPSeeOther(f"/bulletins?done=cancelled&t={_q(title)}")


async def play(request: web.Request) -> web.StreamResponse:
    title, out = await _act(request, "play-now", "bulletin_play_now")
    if not out.get("ok"):
        return _refused(request, out)
    return request.app[CONSOLE].render(request, "played.html", title=title, zones=out.get("zones"))


# ---- emergency -----------------------------------------------------------------------------------------------
def _emergency_bulletin(c: Console, request: web.Request, form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    lang = request["lang"]
    errors: dict[str, str] = {}
    title = str(form.get("title") or "").strip()
    text = str(form.get("text") or "").replace("\r\n", "\n").replace("\r", "\n")
    zones = sorted({z for z in form.getall("zones", []) if isinstance(z, str)})
    assert c.broadcast is not None
    if not title:
        errors["title"] = translate(lang, "e_required")
    elif len(title) > 200:
        errors["title"] = translate(lang, "e_too_long", n=len(title), m=200)
    if not text.strip():
        errors["text"] = translate(lang, "e_required")
    elif len(text) > c.broadcast.tts.max_chars:
        errors["text"] = translate(lang, "e_too_long", n=len(text), m=c.broadcast.tts.max_chars)
    if not zones:
        errors["zones"] = translate(lang, "e_required")
    elif any(z not in c.zones() for z in zones):
        errors["zones"] = translate(lang, "e_zone")
    # always a fresh id of its own: the emergency's as-run rows never land under another bulletin
    b = {"id": slug("khan-cap-" + title), "title": title, "text": text,
         "priority": "emergency", "zones": zones, "chime": {"before": True, "after": True}}
    if not errors:
        try:
            broadcast.parse_bulletin({**b, "schedule": {"at": datetime.now(c.tz).replace(tzinfo=None).isoformat()}},
                           "bulletin", c.broadcast.tts.max_chars)
        except broadcast.BulletinError as exc:
            errors["text"] = translate(lang, "refused", e=str(exc))
    return b, errors


async def emergency_form(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.store is None:
        return _no_broadcast(c, request)
    return c.render(request, "emergency.html", b={"title": "", "text": "", "zones": c.zones()}, errors={},
                    zones=c.zones(), step="write")


async def emergency_post(request: web.Request) -> web.StreamResponse:
    """Two steps, both enforced here: write (the confirmation page carries a token for exactly that content and
    session), then confirm with a ticked box and that token; only then it airs, at once."""
    c = request.app[CONSOLE]
    if c.store is None:
        return _no_broadcast(c, request)
    form = await request.post()
    b, errors = _emergency_bulletin(c, request, form)
    if errors:
        return c.render(request, "emergency.html", status=422, b=b, errors=errors, zones=c.zones(), step="write")
    session = request["session"].csrf
    content = content_of(b["title"], b["text"], b["zones"])
    if form.get("step") == "air":
        if form.get("confirm") != "yes":
            errors["confirm"] = translate(request["lang"], "e_confirm")
        elif not c.confirmations.redeem(form.get("confirmation"), session, content):
            c.ctx.count("emergency_unconfirmed")
            c.ctx.log.warning("emergency_unconfirmed", user=request["session"].user)
            errors["confirm"] = translate(request["lang"], "e_confirm_stale")
    if form.get("step") != "air" or errors:
        return c.render(request, "emergency.html", status=422 if errors else 200, b=b, errors=errors,
                        zones=c.zones(), step="confirm", confirmation=c.confirmations.issue(session, content))
    out = await c.command(request, {"action": "play-now", "bulletin": b})
    await c.record(request, "emergency_aired", b["id"], bool(out.get("ok")), out.get("error") or b["text"][:300])
    if not out.get("ok"):
        return c.render(request, "error.html", status=422, message_key="refused", message_arg=out.get("error"))
    return c.render(request, "played.html", title=b["title"], zones=out.get("zones"))


