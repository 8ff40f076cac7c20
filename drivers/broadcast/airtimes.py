"""When a bulletin airs: one-shot, cron or daily times in a date range, with repeats, quiet hours and misfires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator
from zoneinfo import ZoneInfo

from croniter import croniter

from drivers.broadcast.bulletin import Bulletin
from drivers.broadcast.config import QuietHours

_MAX_SCAN_DAYS = 800


@dataclass(frozen=True, order=True)
class Airing:
    """One planned playing of a bulletin: its scheduled wall time (epoch s) and repeat index."""

    scheduled: float
    bulletin_id: str
    repeat: int = 0


def aware(dt: datetime, tz: ZoneInfo) -> datetime:
    """A time written without a zone is the commune's local time."""
    return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt


def _bases(b: Bulletin, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """First-repeat times strictly after `after`, in order, within the schedule's date range."""
    s = b.schedule
    start_day = s.start_date
    end_day = s.end_date
    if s.at is not None:
        at = aware(s.at, tz)
        if at > after:
            yield at
        return
    if s.cron is not None:
        begin = after
        if start_day is not None:
            begin = max(begin, datetime.combine(start_day, datetime.min.time(), tz) - timedelta(seconds=1))
        it = croniter(s.cron, begin.astimezone(tz))
        while True:
            nxt: datetime = it.get_next(datetime)
            if end_day is not None and nxt.date() > end_day:
                return
            if nxt > after:
                yield nxt
    assert s.times is not None
    day = after.astimezone(tz).date()
    if start_day is not None and start_day > day:
        day = start_day
    times = sorted(s.times)
    for _ in range(_MAX_SCAN_DAYS):
        if end_day is not None and day > end_day:
            return
        if s.weekdays is None or day.isoweekday() in s.weekdays:
            for t in times:
                dt = datetime.combine(day, t, tz)
                if dt > after:
                    yield dt
        day += timedelta(days=1)


def next_airings(b: Bulletin, tz: ZoneInfo, after: float, duration_s: float, limit: int = 10,
                 until: float | None = None) -> list[Airing]:
    """The next `limit` airings scheduled strictly after epoch `after` (and before `until`), repeats expanded."""
    step = duration_s + b.schedule.gap_s
    span = step * (b.schedule.repeat - 1)
    after_dt = datetime.fromtimestamp(after, tz)
    valid_from = aware(b.valid_from, tz).timestamp() if b.valid_from else None
    valid_until = aware(b.valid_until, tz).timestamp() if b.valid_until else None
    out: list[Airing] = []
    for base in _bases(b, tz, after_dt - timedelta(seconds=span)):
        base_ts = base.timestamp()
        if (valid_until is not None and base_ts > valid_until) or (until is not None and base_ts >= until):
            break
        for k in range(b.schedule.repeat):
            ts = base_ts + k * step
            if ts <= after or (valid_from is not None and ts < valid_from):
                continue
            if valid_until is not None and ts > valid_until:
                continue
            out.append(Airing(ts, b.id, k))
        if len(out) >= limit:
            break
    return sorted(out)[:limit]


def in_quiet_hours(quiet: QuietHours | None, ts: float, tz: ZoneInfo) -> bool:
    return quiet is not None and quiet.contains(datetime.fromtimestamp(ts, tz).time())


@dataclass(frozen=True)
class MisfireDecision:
    airing: Airing
    play: bool
    late_s: float


def misfire(airing: Airing, now: float, grace_s: float) -> MisfireDecision:
    """An airing whose time passed (agent down, busy) still plays if it is at most `grace_s` late."""
    late = now - airing.scheduled
    return MisfireDecision(airing, late <= grace_s, late)


def local_iso(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")
