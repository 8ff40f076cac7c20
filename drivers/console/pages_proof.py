"""Proof of broadcast: the as-run log with filters and CSV export, and the printable monthly report."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from drivers.console.forms import parse_date
from drivers.console.i18n import fmt_dt, translate
from drivers.console.server import CONSOLE, Console

PAGE_ROWS = 100
CSV_MAX_ROWS = 200_000
OUTCOMES = ("played", "failed", "skipped", "interrupted", "unreachable")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/asrun", asrun_page)
    r.add_get("/asrun.csv", asrun_csv)
    r.add_get("/reports", report_page)


def _filters(c: Console, q: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Query string → (values to show again, store arguments, errors)."""
    values = {k: str(q.get(k, ""))[:64] for k in ("from", "to", "bulletin", "zone", "outcome")}
    args: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, arg, shift in (("from", "start", 0), ("to", "end", 1)):
        if values[key]:
            d = parse_date(values[key])
            if d is None:
                errors[key] = "e_date"
                continue
            args[arg] = datetime.combine(d + timedelta(days=shift), datetime.min.time(), c.tz).timestamp()
    if values["bulletin"]:
        args["bulletin_id"] = values["bulletin"]
    if values["zone"]:
        args["zone"] = values["zone"]
    if values["outcome"] in OUTCOMES:
        args["outcome"] = values["outcome"]
    elif values["outcome"]:
        errors["outcome"] = "e_choice"
    return values, args, errors


async def asrun_page(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.store is None:
        return c.render(request, "error.html", status=404, message_key="no_broadcast")
    values, args, errors = _filters(c, request.query)
    try:
        page = max(0, int(request.query.get("page", "0")))
    except ValueError:
        page = 0
    total, found = c.store.asrun_find(**args, limit=PAGE_ROWS, offset=page * PAGE_ROWS)
    lang = request["lang"]
    outcome_word = {o: translate(lang, f"oc_{o}") for o in OUTCOMES}
    rows = [(r["outcome"], fmt_dt(r["scheduled"], c.tz, True), r["title"] or r["bulletin_id"], r["zone"],
             outcome_word.get(r["outcome"], r["outcome"]), "–" if r["lateness_ms"] is None else r["lateness_ms"],
             r["reason"] or "", _heard(lang, r)) for r in found]
    qs = urlencode({k: v for k, v in values.items() if v})
    return c.render(request, "asrun.html", rows=rows, total=total, page=page, pages=(total - 1) // PAGE_ROWS + 1,
                    values=values, errors=errors, bulletins=c.store.asrun_bulletins(), zones=c.zones(),
                    outcomes=OUTCOMES, qs=qs)


async def asrun_csv(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.store is None:
        raise web.HTTPNotFound()
    lang = request["lang"]
    _, args, _ = _filters(c, request.query)
    _, rows = c.store.asrun_find(**args, limit=CSV_MAX_ROWS)
    buf = io.StringIO()
    buf.write("\ufeff")  # so spreadsheet programs read UTF-8 Vietnamese right
    w = csv.writer(buf)
    w.writerow([translate(lang, k) for k in ("scheduled", "started", "bulletin", "title", "zone", "priority",
                                             "outcome", "lateness", "reason", "heard", "level_dbfs")])
    for r in rows:
        w.writerow([fmt_dt(r["scheduled"], c.tz, True), fmt_dt(r["started"], c.tz, True), r["bulletin_id"],
                    _cell(r["title"]), r["zone"], translate(lang, f"pr_{r['priority']}"),
                    translate(lang, f"oc_{r['outcome']}"), "" if r["lateness_ms"] is None else r["lateness_ms"],
                    _cell(r["reason"] or ""), r["heard"] or "", "" if r["level_dbfs"] is None else r["level_dbfs"]])
    return web.Response(body=buf.getvalue().encode("utf-8"), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="nhat-ky-phat.csv"'})


def _heard(lang: str, r: dict[str, Any]) -> str:
    """What the zone's monitor input made of an airing: yes/no with its level, or a dash (none, or not aired)."""
    if r["heard"] not in ("yes", "no"):
        return "–"
    return f"{translate(lang, 'heard_' + r['heard'])} ({r['level_dbfs']:g} dBFS)"


def _cell(text: str | None) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _month(text: str, c: Console) -> datetime:
    now = datetime.now(c.tz)
    try:
        m, y = text.strip().split("/")
        return datetime(int(y), int(m), 1, tzinfo=c.tz)
    except ValueError:
        return datetime(now.year, now.month, 1, tzinfo=c.tz)


async def report_page(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if c.store is None:
        return c.render(request, "error.html", status=404, message_key="no_broadcast")
    start = _month(request.query.get("month", ""), c)
    end = (start + timedelta(days=32)).replace(day=1)
    rows = c.store.asrun_report(start.timestamp(), end.timestamp())
    keys = ("planned", "played", "failed", "skipped", "interrupted", "unreachable", "heard", "not_heard", "on_air_s")
    total = {k: sum(r[k] or 0 for r in rows) for k in keys}
    return c.render(request, "report.html", rows=rows, total=total, month=start.strftime("%m/%Y"))
