"""The spool keeps what it accepted, bounds its bytes, evicts lowest priority first, survives corruption."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.driver import Priority
from agent.logs import KvLogger
from agent.spool import Cursor, Record, Spool


def open_spool(path: Path, max_bytes: int = 10_000_000, boot: str = "b1") -> Spool:
    s = Spool(path, max_bytes, boot, KvLogger("test.spool"))
    s.open()
    return s


def rec(topic: str, n: int, prio: Priority = Priority.TELEMETRY, size: int = 10) -> Record:
    return Record(topic, b'{"n":%d,"pad":"%s"}' % (n, b"x" * size), int(prio))


def test_put_is_persistent_and_seq_is_gap_free(tmp_path: Path) -> None:
    s = open_spool(tmp_path / "s.db")
    s.put_sync([rec("telemetry/a", i) for i in range(50)])
    s.put_sync([Record("snapshot/c/e", b"\xff\xd8jpeg", int(Priority.BULK), envelope=False)])
    rows = s.fetch(100)
    assert [r.seq for r in rows if r.seq is not None] == list(range(1, 51))
    assert rows[-1].seq is None and rows[-1].payload == b"\xff\xd8jpeg"
    s.close()
    s2 = open_spool(tmp_path / "s.db", boot="b2")
    assert s2.depth == 51
    assert s2.fetch(1)[0].boot_id == "b1"
    s2.close()


def test_fetch_orders_by_priority_then_age_and_keeps_stream_order(tmp_path: Path) -> None:
    s = open_spool(tmp_path / "s.db")
    s.put_sync([rec("telemetry/a", 1), rec("event/x", 2, Priority.EVENT), rec("telemetry/a", 3),
                rec("event/alarm", 4, Priority.ALARM), rec("event/x", 5, Priority.EVENT)])
    every = s.fetch(10)
    assert [r.topic for r in every] == ["event/alarm", "event/x", "event/x", "telemetry/a", "telemetry/a"]
    assert s.fetch(10) == []  # all of them are in flight now
    s.release(every)
    cursor = Cursor()
    first = s.fetch(2, cursor)
    rest = s.fetch(10, cursor)
    assert [r.topic for r in first + rest] == [r.topic for r in every]
    assert [r.topic for r in rest] == ["event/x", "telemetry/a", "telemetry/a"]
    s.close()


def test_byte_bound_evicts_lowest_priority_oldest_and_counts(tmp_path: Path) -> None:
    s = open_spool(tmp_path / "s.db", max_bytes=1 << 20)
    budget = s.budget
    s.put_sync([rec("event/e", i, Priority.EVENT, 2000) for i in range(40)])
    s.put_sync([rec("snapshot/c/1", i, Priority.BULK, 10000) for i in range(20)])
    s.put_sync([rec("telemetry/t", i, Priority.TELEMETRY, 5000) for i in range(200)])
    assert s.bytes <= budget
    stats = s.stats()
    assert stats["spool_dropped_by_priority"]["bulk"] == 20, stats
    assert stats["spool_dropped_by_priority"]["event"] == 0
    rows = s.fetch(1000)
    s.release(rows)
    telemetry = [r for r in rows if r.topic == "telemetry/t"]
    # the oldest telemetry went first: what remains is the newest, contiguous run
    ns = [int(r.payload.split(b",")[0].split(b":")[1]) for r in telemetry]
    assert ns == list(range(200 - len(ns), 200)) and 0 < len(ns) < 200
    assert stats["spool_dropped"] == 20 + (200 - len(ns))
    # an alarm still gets in by pushing out telemetry; events are never evicted for telemetry
    s.put_sync([rec("event/alarm", 1, Priority.ALARM, 50000)])
    rows = s.fetch(1000)
    assert any(r.topic == "event/alarm" for r in rows)
    assert sum(1 for r in rows if r.topic == "event/e") == 40
    s.close()


def test_lower_priority_record_is_dropped_rather_than_evicting_higher(tmp_path: Path) -> None:
    s = open_spool(tmp_path / "s.db", max_bytes=1 << 20)
    s.put_sync([rec("event/alarm", i, Priority.ALARM, 10000) for i in range(s.budget // 10100)])
    before = s.depth
    s.put_sync([rec("telemetry/t", 0, Priority.TELEMETRY, 50000)])
    assert s.depth == before and s.stats()["spool_dropped_by_priority"]["telemetry"] == 1
    s.close()


def test_delete_after_ack_frees_bytes(tmp_path: Path) -> None:
    s = open_spool(tmp_path / "s.db")
    s.put_sync([rec("telemetry/a", i) for i in range(10)])
    rows = s.fetch(10)
    assert s.delete_sync(rows[:4]) == 4
    s.release(rows)
    assert s.depth == 6 and len(s.fetch(10)) == 6
    assert s.delete_sync(rows[:4]) == 0  # deleting twice is harmless
    assert s.depth == 6 and s.bytes == sum(r.size for r in rows[4:])
    s.close()


def test_a_delete_keeps_the_count_right_when_rows_went_by_hand(tmp_path: Path) -> None:
    """A batch is deleted in one statement; if some of its rows were already gone (a technician's sqlite3
    shell) depth and bytes still match the table."""
    s = open_spool(tmp_path / "s.db")
    s.put_sync([rec("telemetry/a", i, size=i * 10) for i in range(10)])
    rows = s.fetch(10)
    with sqlite3.connect(s.path) as db:
        db.execute("DELETE FROM msgs WHERE id IN (?, ?)", (rows[1].id, rows[7].id))
    assert s.delete_sync(rows[:5]) == 4
    assert s.depth == 4 and s.bytes == sum(r.size for r in rows[5:] if r is not rows[7])
    s.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_database_is_moved_aside_and_reported(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "s.db"
    s = open_spool(path)
    s.put_sync([rec("telemetry/a", i, size=500) for i in range(500)])
    s.close()
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(data[:100] + b"\x00garbage" * 2000 + data[16100:])
    else:
        path.write_bytes(data[:4096 + 10])
    s2 = open_spool(path)
    assert s2.notices and s2.notices[0]["kind"] == "spool_corrupt"
    assert Path(s2.notices[0]["moved_to"]).exists()
    s2.put_sync([rec("telemetry/a", 1)])
    assert s2.depth == 1
    s2.close()
    assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone()[0] == "ok"


def test_a_cancelled_producer_does_not_stop_the_writer(tmp_path: Path) -> None:
    """A driver restarted in the middle of emit() cancels its wait; the spool must keep working."""
    import asyncio

    s = open_spool(tmp_path / "s.db")

    async def scenario() -> None:
        for _ in range(50):
            task = asyncio.create_task(s.put([rec("telemetry/a", 1)]))
            await asyncio.sleep(0)
            task.cancel()
        async with asyncio.timeout(10):
            await asyncio.gather(*(s.put([rec("telemetry/b", i)]) for i in range(10)))

    asyncio.run(scenario())
    assert s.writer_alive()
    assert sum(1 for r in s.fetch(1000) if r.topic == "telemetry/b") == 10
    s.close()


def test_a_record_dropped_for_space_is_told_and_leaves_a_seq_gap(tmp_path: Path) -> None:
    """A full spool that cannot make room (everything in it ranks higher) drops the new record: put says so,
    its seq is skipped so the COC sees the gap, and a spool_dropped notice reports it."""
    s = open_spool(tmp_path / "s.db", max_bytes=1 << 20)
    try:
        n = s.budget // rec("event/alarm", 0, Priority.ALARM, 10000).size
        assert s.put_sync([rec("event/alarm", i, Priority.ALARM, 10000) for i in range(n)]) == 0
        assert s.put_sync([rec("telemetry/t", 0, Priority.TELEMETRY, 50000)]) == 1
        notice = next(x for x in s.notices if x["kind"] == "spool_dropped")
        assert notice["dropped_total"] == 1 and notice["dropped_by_priority"]["telemetry"] == 1
        assert s.put_sync([rec("event/alarm", n, Priority.ALARM, 10000)]) == 0  # evicts the oldest alarm
        seqs = sorted(r.seq for r in s.fetch(1000) if r.seq is not None)
        assert seqs == list(range(2, n + 1)) + [n + 2], "the dropped record's seq n+1 must be missing"
        assert s.dropped == {"bulk": 0, "telemetry": 1, "event": 0, "alarm": 1}
        assert [x["kind"] for x in s.notices].count("spool_dropped") == 1, "one notice per DROP_NOTICE_S"
    finally:
        s.close()
