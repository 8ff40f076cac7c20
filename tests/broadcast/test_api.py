"""The broadcast face: a read-only store view that follows the driver's commits, and its live state."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.broadcast import api as broadcast
from drivers.broadcast.store import DB_FILE, Store


def _bulletin(bid: str) -> broadcast.Bulletin:
    return broadcast.parse_bulletin({"id": bid, "title": "Họp thôn", "text": "Mời bà con đi họp.",
                                     "schedule": {"times": ["06:30"]}}, "test")


def test_the_view_reads_what_the_driver_commits_and_has_no_way_to_write(tmp_path: Path) -> None:
    writer = Store(tmp_path / broadcast.SECTION / DB_FILE)  # the driver's own connection
    view = broadcast.open_view(tmp_path, cache_kb=256)
    try:
        before = view.version()
        writer.put(_bulletin("hop-thon"), "coc")
        assert view.version() != before
        assert [s.bulletin.id for s in view.active()] == ["hop-thon"]
        got = view.get("hop-thon")
        assert got is not None and got.source == "coc"
        assert view.asrun_find() == (0, []) and view.asrun_bulletins() == []
        assert not any(hasattr(view, w) for w in ("put", "cancel", "set_cursor", "add_asrun", "prune_asrun", "db"))
    finally:
        view.close()
        writer.close()


def test_live_state_is_the_drivers_state_file_or_none(tmp_path: Path) -> None:
    assert broadcast.live_state(tmp_path) is None
    d = tmp_path / broadcast.SECTION
    d.mkdir()
    (d / broadcast.STATE_FILE).write_text(json.dumps({"bulletins": {"hop-thon": {"duration_s": 3.5}}}))
    assert broadcast.live_state(tmp_path) == {"bulletins": {"hop-thon": {"duration_s": 3.5}}}
    (d / broadcast.STATE_FILE).write_text("[1, 2]")
    assert broadcast.live_state(tmp_path) is None


def test_heavy_names_load_on_first_use() -> None:
    assert broadcast.next_airings.__module__ == "drivers.broadcast.airtimes"
    assert issubclass(broadcast.DecodeError, Exception)
