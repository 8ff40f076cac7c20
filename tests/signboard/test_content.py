"""What officials put on the boards is checked on the way in: a schedule file (CSV or YAML) with Vietnamese day
names, and bad lines or notices refused with one line naming what and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.signboard.content import ContentError, check_entries, check_notice, read_schedule_file


def test_schedule_csv_with_vietnamese_day_names_is_sorted_by_day_and_time(tmp_path: Path) -> None:
    f = tmp_path / "lich.csv"
    f.write_text("\ufeffday,time,what,who,where\nThứ Sáu,15:00,Làm việc với HTX,,\nthứ 2,7h30,Giao ban,Chủ tịch,"
                 "Hội trường\nCN,08:00,Trực,,\n", encoding="utf-8")
    entries = read_schedule_file(f)
    assert [(e.day, e.time, e.what) for e in entries] == [(1, "07:30", "Giao ban"), (5, "15:00", "Làm việc với HTX"),
                                                          (7, "08:00", "Trực")]


@pytest.mark.parametrize(("text", "suffix", "error", "line"), [
    ("day,time,what\nThứ Hai,07:30,Họp\nThứ Ba,25:00,Họp\n", ".csv", "lich.csv[2].time: '25:00' is not a time like "
                                                                      "07:30", 2),
    ("- {day: 8, time: '07:30', what: Họp}\n", ".yaml", "lich.yaml[1].day: 8 is not a day (1 = Thứ Hai .. 7 = Chủ "
                                                        "Nhật)", 1),
    ("entries:\n  - {day: 1, time: '07:30', what: '  '}\n", ".yaml", "lich.yaml[1].what: is empty", 1),
    ("- [1, 2\n", ".yaml", "lich.yaml: line 2 not valid YAML", None),
])
def test_a_bad_schedule_file_is_named_by_file_and_line(tmp_path: Path, text: str, suffix: str, error: str,
                                                       line: int | None) -> None:
    f = tmp_path / f"lich{suffix}"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as err:
        read_schedule_file(f)
    assert str(err.value) == error and err.value.line == line


def test_bad_notices_and_lines_are_refused_with_what_and_where() -> None:
    with pytest.raises(ContentError, match=r"^boards: unknown board 'cho' \(configured: cong\)$"):
        check_notice({"text": "x", "boards": ["cho"]}, ["cong"], 100, "coc")
    with pytest.raises(ContentError, match=r"^text: longer than 10 characters \(11\)$"):
        check_notice({"text": "Thông báo 1"}, ["cong"], 10, "coc")
    with pytest.raises(ContentError, match=r"^text: contains control characters$"):
        check_notice({"text": "a\x07b"}, ["cong"], 10, "coc")
    with pytest.raises(ContentError, match=r"^entries\[1\]: unknown key 'note'$"):
        check_entries([{"day": 1, "time": "07:30", "what": "x", "note": "y"}])
    assert check_notice({"text": "  Họp   dân\n  tối nay "}, ["cong"], 100, "coc").text == "Họp dân\ntối nay"
