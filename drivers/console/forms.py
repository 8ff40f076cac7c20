"""The bulletin form: fields to a bulletin mapping (Vietnamese errors next to each field) and back."""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from drivers.broadcast.api import Bulletin

PRIORITIES = ("normal", "high", "emergency")
SCHEDULE_KINDS = ("once", "daily", "weekdays", "cron")
MAX_TITLE = 200
_TIME = re.compile(r"^([01]?\d|2[0-3])[:h](\d{2})(?::(\d{2}))?$")
Translate = Callable[..., str]


@dataclass
class FormResult:
    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    bulletin: dict[str, Any] | None = None


def slug(title: str) -> str:
    """An ASCII id from a Vietnamese title, with a random tail so two alike titles never collide."""
    t = unicodedata.normalize("NFD", title.replace("đ", "d").replace("Đ", "D"))
    t = "".join(c for c in t if not unicodedata.combining(c)).lower()
    t = re.sub(r"[^a-z0-9]+", "-", t).strip("-")[:40] or "ban-tin"
    return f"{t}-{secrets.token_hex(3)}"


def parse_date(text: str) -> date | None:
    text = text.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_time(text: str) -> dtime | None:
    m = _TIME.match(text.strip())
    if not m:
        return None
    sec = int(m.group(3) or 0)
    if int(m.group(2)) > 59 or sec > 59:
        return None
    return dtime(int(m.group(1)), int(m.group(2)), sec)


def _time_str(t: dtime) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def _int(raw: str, lo: int, hi: int) -> int | None:
    try:
        v = int(raw.strip())
    except ValueError:
        return None
    return v if lo <= v <= hi else None


def parse_form(form: Mapping[str, Any], getall: Callable[[str], list[str]], t: Translate, tz: ZoneInfo,
               zones: list[str], max_chars: int, audio_file: str | None) -> FormResult:
    """Read the posted fields; `audio_file` is the stored recording when the source is a recording."""
    def get(k: str) -> str:
        v = form.get(k, "")
        return v if isinstance(v, str) else ""

    values: dict[str, Any] = {k: get(k) for k in ("id", "title", "source", "text", "sched", "once_date", "once_time",
                                                  "times", "start_date", "end_date", "cron", "repeat", "gap",
                                                  "priority", "volume", "audio_ref")}
    values["wd"] = [d for d in getall("wd") if d in "1234567" and len(d) == 1]
    values["zones"] = getall("zones")
    values["chime_before"] = get("chime_before") == "1"
    values["chime_after"] = get("chime_after") == "1"
    r = FormResult(values)
    err = r.errors
    title = values["title"].strip()
    if not title:
        err["title"] = t("e_required")
    elif len(title) > MAX_TITLE:
        err["title"] = t("e_too_long", n=len(title), m=MAX_TITLE)
    source = values["source"] or "text"
    b: dict[str, Any] = {"id": values["id"] or slug(title), "title": title}
    if source == "text":
        text = values["text"]
        if not text.strip():
            err["text"] = t("e_required")
        elif len(text) > max_chars:
            err["text"] = t("e_too_long", n=len(text), m=max_chars)
        else:
            b["text"] = text
    elif source == "audio":
        if audio_file is None:
            err.setdefault("recording", t("e_file_missing"))
        else:
            b["audio_file"] = audio_file
    else:
        err["source"] = t("e_choice")
    b["schedule"] = _schedule(values, err, t, tz)
    repeat = _int(values["repeat"] or "1", 1, 20)
    gap = _int(values["gap"] or "0", 0, 3600)
    if repeat is None:
        err["repeat"] = t("e_number", a=1, b=20)
    if gap is None:
        err["gap"] = t("e_number", a=0, b=3600)
    b["schedule"].update(repeat=repeat or 1, gap_s=gap or 0)
    priority = values["priority"] or "normal"
    if priority not in PRIORITIES:
        err["priority"] = t("e_choice")
    b["priority"] = priority
    chosen = [z for z in values["zones"] if z]
    if any(z not in zones for z in chosen):
        err["zones"] = t("e_zone")
    elif chosen:
        b["zones"] = chosen
    b["chime"] = {"before": values["chime_before"], "after": values["chime_after"]}
    volume = _int(values["volume"] or "100", 0, 200)
    if volume is None:
        err["volume"] = t("e_number", a=0, b=200)
    b["volume"] = (volume if volume is not None else 100) / 100
    if not err:
        r.bulletin = b
    return r


def _schedule(v: dict[str, Any], err: dict[str, str], t: Translate, tz: ZoneInfo) -> dict[str, Any]:
    kind = v["sched"] or "once"
    if kind not in SCHEDULE_KINDS:
        err["sched"] = t("e_choice")
        return {}
    if kind == "once":
        d, tm = parse_date(v["once_date"]), parse_time(v["once_time"])
        if d is None:
            err["once_date"] = t("e_date")
        if tm is None:
            err["once_time"] = t("e_time")
        if d is None or tm is None:
            return {}
        at = datetime.combine(d, tm)
        if at.replace(tzinfo=tz).timestamp() < time.time() - 60:
            err["once_time"] = t("e_past")
        return {"at": at.isoformat()}
    out: dict[str, Any] = {}
    start, end = v["start_date"].strip(), v["end_date"].strip()
    sd = parse_date(start) if start else None
    ed = parse_date(end) if end else None
    if start and sd is None:
        err["start_date"] = t("e_date")
    if end and ed is None:
        err["end_date"] = t("e_date")
    if sd and ed and ed < sd:
        err["end_date"] = t("e_end_before")
    if sd:
        out["start_date"] = sd.isoformat()
    if ed:
        out["end_date"] = ed.isoformat()
    if kind == "cron":
        from croniter import croniter

        expr = " ".join(v["cron"].split())
        if len(expr.split()) != 5 or not croniter.is_valid(expr):
            err["cron"] = t("e_cron")
        out["cron"] = expr
        return out
    times = []
    for part in re.split(r"[,;\s]+", v["times"].strip()):
        if not part:
            continue
        tm = parse_time(part)
        if tm is None:
            err["times"] = t("e_time")
            break
        times.append(_time_str(tm))
    if not times and "times" not in err:
        err["times"] = t("e_required")
    out["times"] = times
    if kind == "weekdays":
        if not v["wd"]:
            err["wd"] = t("e_weekdays")
        out["weekdays"] = sorted({int(d) for d in v["wd"]})
    return out


def form_values(b: Bulletin, tz: ZoneInfo) -> dict[str, Any]:
    """A stored bulletin as the form shows it for editing."""
    s = b.schedule
    v: dict[str, Any] = {"id": b.id, "title": b.title, "source": "audio" if b.audio_file else "text",
                         "text": b.text or "", "audio_ref": b.audio_file.name if b.audio_file else "",
                         "repeat": str(s.repeat), "gap": str(int(s.gap_s)), "priority": b.priority,
                         "volume": str(round(b.volume * 100)), "zones": list(b.zones or []),
                         "chime_before": b.chime.before, "chime_after": b.chime.after, "wd": [],
                         "start_date": s.start_date.strftime("%d/%m/%Y") if s.start_date else "",
                         "end_date": s.end_date.strftime("%d/%m/%Y") if s.end_date else "",
                         "once_date": "", "once_time": "", "times": "", "cron": ""}
    if s.at is not None:
        at = s.at.astimezone(tz) if s.at.tzinfo else s.at
        v.update(sched="once", once_date=at.strftime("%d/%m/%Y"), once_time=_time_str(at.time()))
    elif s.cron is not None:
        v.update(sched="cron", cron=s.cron)
    else:
        v.update(sched="weekdays" if s.weekdays else "daily", times=", ".join(_time_str(x) for x in s.times or []),
                 wd=[str(d) for d in s.weekdays or []])
    return v


def blank_values(tz: ZoneInfo) -> dict[str, Any]:
    now = datetime.now(tz)
    return {"id": "", "title": "", "source": "text", "text": "", "audio_ref": "", "sched": "once",
            "once_date": now.strftime("%d/%m/%Y"), "once_time": "", "times": "", "cron": "", "wd": [],
            "start_date": "", "end_date": "", "repeat": "1", "gap": "0", "priority": "normal", "volume": "100",
            "zones": [], "chime_before": True, "chime_after": False}
