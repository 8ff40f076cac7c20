"""The Bulletin model: what to say, when, where, and how urgently; validated with one-line errors."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from agent.section import Section, Weekdays

BULLETIN_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PRIORITY_RANK = {"normal": 0, "high": 1, "emergency": 2}


class BulletinError(ValueError):
    """A bulletin that cannot be accepted; the message is one line naming the key."""


class Schedule(Section):
    """Exactly one of: `at` (one airing), `cron`, or `times` (every day at these times, in a date range)."""

    at: Optional[datetime] = None
    cron: Optional[str] = None
    times: Optional[list[time]] = Field(None, min_length=1)
    weekdays: Optional[Weekdays] = Field(None, description="1=Monday .. 7=Sunday; only with `times`")
    start_date: Optional[date] = None
    end_date: Optional[date] = None
    repeat: int = Field(1, ge=1, le=20, description="how many times each airing is played")
    gap_s: float = Field(0.0, ge=0, le=3600, description="pause between the end of one repeat and the next")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from croniter import croniter

        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(f"not a 5-field cron expression: {v!r}")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        kinds = [k for k in ("at", "cron", "times") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of at, cron, times")
        if self.weekdays is not None and self.times is None:
            raise ValueError("weekdays go with times")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class Chime(Section):
    before: bool = True
    after: bool = False


class Bulletin(Section):
    """One radio bulletin as the operator writes it (YAML file, COC command or CLI)."""

    id: str = Field(pattern=BULLETIN_ID)
    title: str = Field("", max_length=200)
    text: Optional[str] = None
    audio_file: Optional[Path] = None
    engine: Literal["auto", "gtts", "espeak"] = "auto"
    voice: Optional[str] = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_.+-]+$")
    schedule: Schedule
    priority: Literal["normal", "high", "emergency"] = "normal"
    zones: Optional[list[str]] = Field(None, min_length=1)
    chime: Chime = Chime()
    volume: float = Field(1.0, ge=0.0, le=2.0)
    valid_from: Optional[datetime] = None
    valid_until: Optional[datetime] = None

    @field_validator("text")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("text is empty")
        return v

    @model_validator(mode="after")
    def _source(self) -> Bulletin:
        if (self.text is None) == (self.audio_file is None):
            raise ValueError("give exactly one of text, audio_file")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until is not after valid_from")
        return self

    @property
    def rank(self) -> int:
        return PRIORITY_RANK[self.priority]


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and "[" in p)) or "(bulletin)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_bulletin(data: Any, where: str, max_chars: int = 20000) -> Bulletin:
    """Validate a mapping as a bulletin; errors are one line starting with `where`."""
    if not isinstance(data, dict):
        raise BulletinError(f"{where}: a bulletin must be a mapping of keys, got {type(data).__name__}")
    text = data.get("text")
    if isinstance(text, str) and len(text) > max_chars:
        raise BulletinError(f"{where}: text: too long ({len(text)} characters, limit {max_chars})")
    try:
        return Bulletin.model_validate(data)
    except ValidationError as exc:
        raise BulletinError(f"{where}: {_one_line(exc)}") from None


def load_bulletin_file(path: Path, max_chars: int = 20000, max_bytes: int = 2_000_000) -> Bulletin:
    """Read one bulletin YAML file; a relative audio_file is taken relative to the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BulletinError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise BulletinError(f"{path}: file too large ({len(raw)} bytes, limit {max_bytes})")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BulletinError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise BulletinError(f"{path}: YAML error: {getattr(exc, 'problem', None) or exc}{line}") from None
    if isinstance(data, dict) and "id" not in data:
        data = {"id": path.stem, **data}
    bulletin = parse_bulletin(data, str(path), max_chars)
    if bulletin.audio_file is not None and not bulletin.audio_file.is_absolute():
        bulletin = bulletin.model_copy(update={"audio_file": (path.parent / bulletin.audio_file).resolve()})
    return bulletin


def to_json(b: Bulletin) -> str:
    return b.model_dump_json(exclude_none=True)


def from_json(text: str) -> Bulletin:
    return Bulletin.model_validate_json(text)
