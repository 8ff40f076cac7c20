"""When bulletins air: one-shot, cron, daily times in a date range, repeats, validity, quiet hours, misfire."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from drivers.broadcast.airtimes import Airing, in_quiet_hours, misfire, next_airings
from drivers.broadcast.bulletin import BulletinError, parse_bulletin
from drivers.broadcast.config import QuietHours

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def _b(schedule: dict, **kw: object) -> object:
    return parse_bulletin({"id": "t", "text": "Xin chào", "schedule": schedule, **kw}, "test")


def _ts(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=TZ).timestamp()


def _local(a: Airing) -> str:
    return datetime.fromtimestamp(a.scheduled, TZ).strftime("%Y-%m-%d %H:%M:%S")


def test_one_shot_in_local_time_and_only_once() -> None:
    b = _b({"at": "2026-11-25T07:30:00"})
    assert [_local(a) for a in next_airings(b, TZ, _ts("2026-11-25T07:00"), 10.0)] == ["2026-11-25 07:30:00"]
    assert next_airings(b, TZ, _ts("2026-11-25T07:30"), 10.0) == []


def test_cron_weekdays() -> None:
    b = _b({"cron": "30 6 * * 1-5"})
    got = [_local(a) for a in next_airings(b, TZ, _ts("2026-11-27T12:00"), 10.0, limit=3)]  # a Friday
    assert got == ["2026-11-30 06:30:00", "2026-12-01 06:30:00", "2026-12-02 06:30:00"]


def test_daily_times_in_date_range_with_repeats_and_gap() -> None:
    b = _b({"times": ["17:00", "06:30"], "start_date": "2026-12-01", "end_date": "2026-12-02",
            "repeat": 2, "gap_s": 30})
    got = [_local(a) for a in next_airings(b, TZ, _ts("2026-11-20T00:00"), 60.0, limit=20)]
    # each repeat starts after the previous one (60 s of audio) plus the 30 s gap
    assert got == ["2026-12-01 06:30:00", "2026-12-01 06:31:30", "2026-12-01 17:00:00", "2026-12-01 17:01:30",
                   "2026-12-02 06:30:00", "2026-12-02 06:31:30", "2026-12-02 17:00:00", "2026-12-02 17:01:30"]
    # after a restart mid-repeat, only the remaining repeat is due
    assert [_local(a) for a in next_airings(b, TZ, _ts("2026-12-01T06:30"), 60.0, 1)] == ["2026-12-01 06:31:30"]


def test_weekdays_and_validity_window() -> None:
    b = _b({"times": ["07:00"], "weekdays": [1]}, valid_until="2026-12-10T00:00")
    got = [_local(a) for a in next_airings(b, TZ, _ts("2026-11-23T08:00"), 5.0, limit=10)]
    assert got == ["2026-11-30 07:00:00", "2026-12-07 07:00:00"]


def test_quiet_hours_wrap_midnight_and_misfire_grace() -> None:
    q = QuietHours(start=time(21, 30), end=time(5, 0))
    assert in_quiet_hours(q, _ts("2026-11-25T23:00"), TZ) and in_quiet_hours(q, _ts("2026-11-26T04:59"), TZ)
    assert not in_quiet_hours(q, _ts("2026-11-26T05:00"), TZ) and not in_quiet_hours(None, 0.0, TZ)
    a = Airing(1000.0, "t")
    assert misfire(a, 1100.0, 300).play and not misfire(a, 1400.0, 300).play


@pytest.mark.parametrize("data, error", [
    ({"id": "x", "text": "a", "schedule": {}}, "schedule: give exactly one of at, cron, times"),
    ({"id": "x", "text": "a", "schedule": {"at": "2026-01-01T00:00", "cron": "* * * * *"}}, "exactly one"),
    ({"id": "x", "schedule": {"at": "2026-01-01T00:00"}}, "give exactly one of text, audio_file"),
    ({"id": "x y", "text": "a", "schedule": {"at": "2026-01-01T00:00"}}, "id: String should match"),
    ({"id": "x", "text": "a", "priority": "urgent", "schedule": {"at": "2026-01-01T00:00"}}, "priority: Input should"),
    ({"id": "x", "text": "a", "schedule": {"times": ["07:00"], "start_date": "2026-02-01",
                                           "end_date": "2026-01-01"}}, "end_date is before start_date"),
    ({"id": "x", "text": "a", "colour": "red", "schedule": {"at": "2026-01-01T00:00"}}, "colour: Extra inputs"),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_invalid_bulletins_give_one_line_naming_the_key(data: object, error: str) -> None:
    with pytest.raises(BulletinError) as exc:
        parse_bulletin(data, "f.yaml")
    assert str(exc.value).startswith("f.yaml: ") and error in str(exc.value) and "\n" not in str(exc.value)
