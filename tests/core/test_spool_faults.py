"""Spool faults on real files: a lock, a full disk, a read-only remount and real corruption are told apart."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from agent.logs import KvLogger
from agent.spool import Priority, Record, Spool, SpoolUnavailable, disk_bytes
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wait import wait_until


def open_spool(path: Path, max_bytes: int = 64 << 20, busy_s: float = 0.2) -> Spool:
    s = Spool(path, max_bytes, "b1", KvLogger("test.spool"))
    s.busy_timeout_s = busy_s
    s.open()
    return s


def rec(n: int, size: int = 100, prio: Priority = Priority.TELEMETRY) -> Record:
    return Record("telemetry/t", b'{"n":%d,"pad":"%s"}' % (n, b"x" * size), int(prio))


def numbers(s: Spool) -> list[int]:
    """What the file holds, read by a connection of its own."""
    db = sqlite3.connect(s.path)
    try:
        rows = db.execute("SELECT payload FROM msgs").fetchall()
    finally:
        db.close()
    return sorted(int(bytes(r[0]).split(b",")[0].split(b":")[1]) for r in rows)


def corrupt_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(path.name + ".corrupt-*") if not p.name.endswith(("-wal", "-shm")))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs the test can fill or remount read-only (root only)."""
    with mounted_tmpfs(tmp_path / "mnt", "8m") as mnt:
        yield mnt


def fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    return filler


def test_a_lock_at_start_is_not_corruption(tmp_path: Path) -> None:
    """The old spool moved a healthy file aside when PRAGMA journal_mode=WAL met a lock."""
    path = tmp_path / "s.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE keep(x)")
    other.execute("INSERT INTO keep VALUES (42)")
    other.execute("BEGIN EXCLUSIVE")  # rollback-journal mode: nobody else may even read
    s = open_spool(path)
    try:
        assert s.state == "degraded" and "SQLITE_BUSY" in s.degraded_reason, s.degraded_reason
        assert corrupt_files(path) == [] and path.exists()
        assert [n["kind"] for n in s.notices] == ["spool_degraded"]
        with pytest.raises(SpoolUnavailable, match="not stored"):
            s.put_sync([rec(1)])
        assert s.refused == 1
        other.execute("COMMIT")
        other.close()
        wait_until(lambda: s.state == "ok", 15, what="resume once the lock is gone")
        s.put_sync([rec(2)])
        assert numbers(s) == [2]
        assert sqlite3.connect(path).execute("SELECT x FROM keep").fetchone() == (42,)
        assert [n["kind"] for n in s.notices] == ["spool_degraded", "spool_resumed"]
    finally:
        s.close()


def test_disk_full_keeps_the_file_refuses_then_resumes(tmpfs: Path) -> None:
    path = tmpfs / "spool.db"
    s = open_spool(path)
    try:
        s.put_sync([rec(i, 200) for i in range(1000)])
        durable = numbers(s)
        filler = fill(tmpfs)
        refused_at = None
        for i in range(1000, 200_000, 100):
            try:
                s.put_sync([rec(j, 200) for j in range(i, i + 100)])
            except SpoolUnavailable as exc:
                refused_at = i
                assert "SQLITE_FULL" in str(exc) or "SQLITE_IOERR" in str(exc) or "spool unavailable" in str(exc)
                break
        assert refused_at is not None, "the full disk was never noticed"
        assert s.state == "degraded" and s.stats()["spool_state"] == "degraded"
        assert corrupt_files(path) == []
        with pytest.raises(SpoolUnavailable):
            s.put_sync([rec(999_999)])
        assert s.refused >= 101
        filler.unlink()
        wait_until(lambda: s.state == "ok", 20, what="resume after space returns")
        s.put_sync([rec(500_000)])
        got = set(numbers(s))
        assert set(durable) <= got and 500_000 in got
        assert set(range(1000, refused_at)) <= got  # everything whose put returned is still there
        assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        s.close()


def test_read_only_remount_keeps_the_file_and_resumes(tmpfs: Path) -> None:
    """A file system remounted read-only (as ext4 does after an error): the spool waits, then resumes.

    Linux refuses to remount read-only while a file is open for writing, so the spool is reopened on it,
    as after the agent's restart; the old code tried to rename the file aside there and crashed."""
    path = tmpfs / "spool.db"
    s = open_spool(path)
    s.put_sync([rec(i) for i in range(100)])
    s.close()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    try:
        s = open_spool(path)
        assert s.state == "degraded"
        reason = s.degraded_reason
        assert any(code in reason for code in ("READONLY", "CANTOPEN", "IOERR")), reason
        with pytest.raises(SpoolUnavailable):
            s.put_sync([rec(1000)])
        assert corrupt_files(path) == []
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    try:
        wait_until(lambda: s.state == "ok", 20, what="resume after remount rw")
        s.put_sync([rec(1001)])
        assert numbers(s) == list(range(100)) + [1001]
        assert corrupt_files(path) == []
    finally:
        s.close()


def test_garbage_in_pages_quarantines_salvages_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = open_spool(path)
    s.put_sync([rec(i, 300) for i in range(3000)])
    s.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:  # garbage over a run of pages in the middle of the table
        f.seek(size // 2)
        f.write(os.urandom(4096 * 6))
    s2 = open_spool(path)
    try:
        notice = next(n for n in s2.notices if n["kind"] == "spool_corrupt")
        moved = Path(notice["moved_to"])
        assert moved.exists() and moved in corrupt_files(path)
        assert 2000 < notice["salvaged"] < 3000, notice
        got = numbers(s2)
        assert len(got) == notice["salvaged"] and set(got) <= set(range(3000))
        assert 0 in got and 2999 in got  # the readable rows on both sides of the damage
        stats = s2.stats()
        assert stats["spool_quarantined"] == [str(moved)] and stats["spool_quarantine_bytes"] > 0
        assert s2.budget == s2.max_bytes - s2.wal_allowance - stats["spool_quarantine_bytes"]
        rows = s2.fetch(5)
        assert all(r.historical for r in rows)  # salvaged rows are replayed data
    finally:
        s2.close()
    # damaged again in the same second: a second, distinct quarantine file
    path.write_bytes(b"not a database" * 1000)
    s3 = open_spool(path)
    try:
        assert len(corrupt_files(path)) == 2
        assert any(n["kind"] == "spool_corrupt" and "SQLITE_NOTADB" in n["reason"] for n in s3.notices)
    finally:
        s3.close()


def test_quarantined_files_are_pruned_to_their_share_of_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    for _ in range(4):
        path.write_bytes(b"garbage!" * (100 * 1024))  # 800 KiB each, against a 2 MiB budget
        s = open_spool(path, max_bytes=2 << 20)
        s.close()
    left = corrupt_files(path)
    assert len(left) == 0 or sum(disk_bytes(p) for p in left) <= (2 << 20) * 0.25


def test_replaced_spool_never_deletes_unsent_rows(tmp_path: Path) -> None:
    """PUBACKs for rows of a replaced file must not delete the new file's rows with the same ids."""
    path = tmp_path / "s.db"
    s = open_spool(path)
    try:
        s.put_sync([rec(i) for i in range(10)])
        old = s.fetch(10)
        assert s.inflight() == 10
        # what corruption causes: the writer quarantines, salvages into a new file, starts a new generation
        s.quarantine_sync("replaced by the test")
        assert s.gen == 1
        s.put_sync([rec(100 + i) for i in range(10)])
        assert s.delete_sync(old) == 0  # stale PUBACKs forget, never delete
        assert numbers(s) == list(range(10)) + list(range(100, 110))
        cursor_rows = s.fetch(100)
        assert len(cursor_rows) == 20 and all(r.gen == 1 for r in cursor_rows)
    finally:
        s.close()


def test_eviction_skips_rows_awaiting_puback_and_only_when_the_record_fits(tmp_path: Path) -> None:
    s = open_spool(tmp_path / "s.db", max_bytes=1 << 20)
    try:
        budget = s.budget
        per = rec(99_999, 300).size
        n = budget // per
        s.put_sync([rec(i, 300) for i in range(n)])
        assert s.dropped["telemetry"] == 0
        inflight = s.fetch(50)  # the oldest 50 are on their way to the broker
        s.put_sync([rec(n + i, 300) for i in range(100)])
        got = numbers(s)
        assert set(range(50)) <= set(got), "rows awaiting PUBACK were evicted"
        lost = n + 100 - len(got)
        assert s.dropped["telemetry"] == lost > 50 and s.bytes <= budget
        assert not set(range(50, 50 + lost)) & set(got), "the oldest rows not in flight go first"
        assert s.delete_sync(inflight) == 50
        # a record that cannot fit even after evicting everything below it: nothing is deleted for it
        before = (s.depth, s.bytes)
        s.put_sync([Record("event/big", b"x" * (budget + 1), int(Priority.ALARM))])
        assert (s.depth, s.bytes) == before and s.dropped["alarm"] == 1
    finally:
        s.close()


def test_counters_are_restored_when_a_commit_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = open_spool(path)
    try:
        s.put_sync([rec(i) for i in range(5)])
        before = (s._seq, s.depth, s.bytes)
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock: the spool's commit fails with SQLITE_BUSY
        with pytest.raises(SpoolUnavailable):
            s.put_sync([rec(i) for i in range(5, 10)])
        assert (s._seq, s.depth, s.bytes) == before
        other.execute("ROLLBACK")
        other.close()
        wait_until(lambda: s.state == "ok", 15, what="resume")
        s.put_sync([rec(10)])
        seqs = [r.seq for r in s.fetch(100)]
        assert seqs == list(range(1, 7)), "seq must stay gap-free over a failed commit"
    finally:
        s.close()


def test_file_on_disk_stays_under_max_bytes_and_shrinks_when_drained(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    max_bytes = 4 << 20
    s = open_spool(path, max_bytes=max_bytes)
    try:
        peak = 0
        for round_ in range(3):
            for i in range(150):
                s.put_sync([rec(round_ * 100_000 + i * 100 + j, 180) for j in range(100)])
                peak = max(peak, disk_bytes(path))
            assert s.dropped["telemetry"] > 0
            rows = s.fetch(1_000_000)
            for k in range(0, len(rows), 500):
                s.delete_sync(rows[k:k + 500])
                peak = max(peak, disk_bytes(path))
            assert s.depth == 0
        assert peak <= max_bytes, f"{peak} bytes on disk > max_bytes {max_bytes}"
        # the writer gives the space back a bounded step at a time while idle
        wait_until(lambda: disk_bytes(path) <= max_bytes // 4, 15, what="a drained spool gives its space back")
    finally:
        s.close()


def test_rows_delivered_while_the_spool_cannot_write_are_not_sent_again(tmp_path: Path) -> None:
    """The broker acknowledged them but the delete failed (another process holds the write lock): the
    spool must not hand them out again, not even to a new uplink session, and deletes them once it can."""
    path = tmp_path / "spool.db"
    s = open_spool(path)
    other: sqlite3.Connection | None = None
    try:
        s.put_sync([rec(i) for i in range(100)])
        rows = s.fetch(60)
        assert len(rows) == 60
        other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
        other.execute("BEGIN IMMEDIATE")  # WAL: readers go on, no other writer can
        with pytest.raises(SpoolUnavailable):
            s.delete_sync(rows)
        assert s.state == "degraded" and s.stats()["spool_delete_pending"] == 60 and s.inflight() == 0
        s.release_all()  # a new uplink session
        again = s.fetch(1000)
        assert sorted(int(r.payload.split(b",")[0].split(b":")[1]) for r in again) == list(range(60, 100))
        s.release_all()
        other.execute("ROLLBACK")
        wait_until(lambda: s.state == "ok" and s.delete_pending() == 0, 20, what="resume and deferred deletes")
        assert numbers(s) == list(range(60, 100)) and s.depth == 40
    finally:
        if other is not None:
            other.close()
        s.close()


def test_a_corrupt_spool_does_not_salvage_rows_the_broker_already_has(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    s = open_spool(path)
    try:
        s.put_sync([rec(i) for i in range(10)])
        rows = s.fetch(4)
        s._defer_deletes(rows)  # as after a delete the disk refused
        s.quarantine_sync("test")
        assert numbers(s) == list(range(4, 10))
        assert s.delete_pending() == 0
    finally:
        s.close()


def test_a_data_dir_deleted_under_the_spool_is_recreated_with_what_was_not_delivered(tmp_path: Path) -> None:
    """rm -rf of the data dir: SQLite would keep committing into the unlinked file. The next commit notices,
    starts a fresh file at the path and carries over every row the broker does not have."""
    data = tmp_path / "data"
    path = data / "spool.db"
    s = open_spool(path)
    try:
        s.put_sync([rec(i) for i in range(100)])
        delivered = s.fetch(10)
        assert s.delete_sync(delivered) == 10
        s.fetch(5)  # in flight when the file goes: sent again from the new file
        subprocess.run(["rm", "-rf", str(data)], check=True)
        s.put_sync([rec(i) for i in range(100, 105)])
        assert path.exists() and s.state == "ok"
        assert numbers(s) == list(range(10, 105)), "rows accepted before and after the rm are in the new file"
        assert s.stats()["spool_files_lost"] == 1 and s.depth == 95
        kinds = [n["kind"] for n in s.notices]
        assert kinds == ["spool_degraded", "spool_resumed"], kinds
        assert "SpoolFileLost" in s.notices[0]["reason"] and s.notices[1]["carried_over"] == 95
        assert len(s.fetch(1000)) == 95  # a new generation: nothing counts as in flight any more
    finally:
        s.close()
    s = open_spool(path)  # what a restart finds
    try:
        assert s.depth == 95 and numbers(s) == list(range(10, 105))
    finally:
        s.close()
