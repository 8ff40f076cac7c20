"""What the boards show: notices officials chose and the leaders' weekly work schedule, checked on the way in
(one-line errors naming what and where), kept as one JSON document on disk."""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

DAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
_HHMM = re.compile(r"^([01]?\d|2[0-3])[:hH]([0-5]\d)$")
MAX_ENTRIES = 100
FIELD_MAX = 300


class ContentError(ValueError):
    """Bad notice or schedule: the message says what and where, on one line; `field`, `line` (1-based, schedule)
    and `code` let the console say the same in Vietnamese."""

    def __init__(self, message: str, field: str = "", code: str = "invalid", line: int | None = None) -> None:
        super().__init__(message)
        self.field, self.code, self.line = field, code, line


@dataclass
class Notice:
    id: str
    text: str
    title: str = ""
    boards: list[str] | None = None  # None: every board
    bulletin: str | None = None  # the bulletin whose text it shows
    created: float = field(default_factory=time.time)
    by: str = ""


@dataclass
class Entry:
    """One line of the leaders' work schedule: day of the week (1 = Monday), start time, what, who, where."""

    day: int
    time: str
    what: str
    who: str = ""
    where: str = ""


def _text(v: Any, where: str, limit: int, required: bool = True, line: int | None = None) -> str:
    name = where.rpartition(".")[2]
    if v is None:
        v = ""
    if not isinstance(v, (str, int, float)) or isinstance(v, bool):
        raise ContentError(f"{where}: must be text", name, "not_text", line)
    s = "\n".join(" ".join(x.split()) for x in str(v).splitlines()).strip()
    if required and not s:
        raise ContentError(f"{where}: is empty", name, "empty", line)
    if len(s) > limit:
        raise ContentError(f"{where}: longer than {limit} characters ({len(s)})", name, "too_long", line)
    if any(ord(c) < 32 and c != "\n" for c in s):
        raise ContentError(f"{where}: contains control characters", name, "control", line)
    return s


def check_notice(args: dict[str, Any], boards: list[str], max_chars: int, by: str) -> Notice:
    text = _text(args.get("text"), "text", max_chars)
    title = _text(args.get("title"), "title", 200, required=False)
    chosen = args.get("boards")
    if chosen is not None:
        if not isinstance(chosen, list) or not chosen:
            raise ContentError("boards: must be a non-empty list of board ids", "boards", "empty")
        unknown = [b for b in chosen if b not in boards]
        if unknown:
            raise ContentError(f"boards: unknown board {unknown[0]!r} (configured: {', '.join(boards) or 'none'})",
                               "boards", "unknown")
    nid = args.get("id") or uuid.uuid4().hex[:10]
    if not isinstance(nid, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", nid):
        raise ContentError("id: 1-64 letters, digits, _ . -", "id")
    return Notice(nid, text, title, chosen, args.get("bulletin"), time.time(), by)


def check_entries(raw: Any, where: str = "entries") -> list[Entry]:
    """The schedule's lines, sorted by day and time; the first bad one named by its position."""
    if not isinstance(raw, list):
        raise ContentError(f"{where}: must be a list", "entries")
    if len(raw) > MAX_ENTRIES:
        raise ContentError(f"{where}: more than {MAX_ENTRIES} lines ({len(raw)})", "entries", "too_many")
    out = []
    for i, e in enumerate(raw, 1):
        at = f"{where}[{i}]"
        if not isinstance(e, dict):
            raise ContentError(f"{at}: must be a mapping with day, time, what, who, where", "entries", line=i)
        extra = set(e) - {"day", "time", "what", "who", "where"}
        if extra:
            raise ContentError(f"{at}: unknown key {sorted(extra)[0]!r}", sorted(extra)[0], "unknown", i)
        day = _day(e.get("day"), f"{at}.day", i)
        m = _HHMM.match(str(e.get("time") or "").strip())
        if not m:
            raise ContentError(f"{at}.time: {e.get('time')!r} is not a time like 07:30", "time", "bad_time", i)
        out.append(Entry(day, f"{int(m.group(1)):02d}:{m.group(2)}",
                         _text(e.get("what"), f"{at}.what", FIELD_MAX, line=i),
                         _text(e.get("who"), f"{at}.who", FIELD_MAX, False, i),
                         _text(e.get("where"), f"{at}.where", FIELD_MAX, False, i)))
    return sorted(out, key=lambda x: (x.day, x.time))


def _day(v: Any, where: str, line: int) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 7:
        return v
    if isinstance(v, str):
        s = v.strip().lower()
        if s.isdigit() and 1 <= int(s) <= 7:
            return int(s)
        names = [d.lower() for d in DAYS_VI]
        if s in names:
            return names.index(s) + 1
        if s in ("thứ 2", "thứ 3", "thứ 4", "thứ 5", "thứ 6", "thứ 7"):
            return int(s[-1]) - 1
        if s in ("cn", "chủ nhật"):
            return 7
    raise ContentError(f"{where}: {v!r} is not a day (1 = Thứ Hai .. 7 = Chủ Nhật)", "day", "bad_day", line)


def read_schedule_file(path: Path) -> list[Entry]:
    """A schedule file: YAML/JSON (a list, or {entries: [...]}) or CSV with a header day,time,what,who,where."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError) as exc:
        raise ContentError(f"{path}: cannot read: {exc}", "file", "unreadable") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return check_entries([{k.strip().lower(): v for k, v in r.items() if k} for r in rows], path.name)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ContentError(f"{path.name}:{line} not valid YAML", "file", "bad_yaml") from None
    if isinstance(data, dict):
        data = data.get("entries")
    return check_entries(data, path.name)


@dataclass
class Content:
    """Everything officials put on the boards; saved whole after each change."""

    notices: list[Notice] = field(default_factory=list)
    schedule: list[Entry] = field(default_factory=list)
    schedule_updated: float | None = None
    schedule_by: str = ""
    version: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"notices": [asdict(n) for n in self.notices], "schedule": [asdict(e) for e in self.schedule],
                "schedule_updated": self.schedule_updated, "schedule_by": self.schedule_by, "version": self.version}

    @classmethod
    def from_json(cls, doc: Any) -> Content:
        """What was saved; a damaged document starts empty rather than stopping the boards."""
        if not isinstance(doc, dict):
            return cls()
        try:
            return cls([Notice(**n) for n in doc.get("notices") or []], [Entry(**e) for e in doc.get("schedule") or []],
                       doc.get("schedule_updated"), doc.get("schedule_by") or "", int(doc.get("version") or 0))
        except (TypeError, ValueError):
            return cls()

    def add(self, notice: Notice, keep: int) -> None:
        self.notices = [n for n in self.notices if n.id != notice.id] + [notice]
        del self.notices[:-keep]
        self.version += 1

    def clear(self, nid: str | None) -> int:
        before = len(self.notices)
        self.notices = [] if nid is None else [n for n in self.notices if n.id != nid]
        self.version += 1
        return before - len(self.notices)

    def set_schedule(self, entries: list[Entry], by: str) -> None:
        self.schedule, self.schedule_updated, self.schedule_by = entries, time.time(), by
        self.version += 1
