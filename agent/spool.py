"""Durable store-and-forward queue: SQLite in WAL mode, group commit, bounded on disk.

`put` returns only after the batch holding its records is committed with synchronous=FULL,
so a record whose put returned survives kill -9 and power loss. Many concurrent puts share
one commit (group commit): while one fsync runs, the next batch gathers.

Faults are told apart by SQLite's error code: corruption (SQLITE_CORRUPT, SQLITE_NOTADB, a
failed quick_check) quarantines the file under a unique name and salvages its readable rows
into a fresh spool (agent/salvage.py reads the damaged file); every other error (disk full, I/O,
locked, read-only, cannot open) keeps the file, refuses new records with SpoolUnavailable and
retries by itself until it works.

A file deleted or replaced under the open connection (`rm -rf` of the data dir) would keep taking
commits that vanish at the next start: every commit checks the path still names the open file; if
not, the spool starts a fresh file there and carries over the rows not yet delivered.
A record dropped for space still takes its seq (the COC sees the gap) and is reported in a
`spool_dropped` notice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Iterable

from agent.backoff import Backoff
from agent.logs import KvLogger
from agent.salvage import (
    SALVAGE_MARK,
    DamagedReader,
    fsync_dir,
    open_damaged,
    read_delivered,
    salvage_marker,
    write_marker,
)


class Priority(IntEnum):
    """Spool priority class: when the spool is full the lowest class goes first."""

    BULK = 0
    TELEMETRY = 1
    EVENT = 2
    ALARM = 3


_SCHEMA = """
CREATE TABLE IF NOT EXISTS msgs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  prio INTEGER NOT NULL,
  topic TEXT NOT NULL,
  boot_id TEXT NOT NULL,
  seq INTEGER,
  historical INTEGER NOT NULL,
  created REAL NOT NULL,
  payload BLOB NOT NULL,
  size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS msgs_prio_id ON msgs(prio, id);
CREATE TABLE IF NOT EXISTS probe(x BLOB);
CREATE TABLE IF NOT EXISTS salvage(source TEXT PRIMARY KEY, next_id INTEGER NOT NULL);
"""
# bytes counted per row besides payload and topic: SQLite's cell, record header, boot_id, index entry
_ROW_OVERHEAD = 128
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_PROBE_BYTES = 64 * 1024  # a resume probe must be able to write this much before records are accepted again
_VACUUM_STEP_PAGES = 2048
_QUARANTINE_SHARE = 0.25  # quarantined files may take at most this share of max_bytes
_CARRY_ROWS = 1000  # rows copied per commit out of a file that was deleted under the spool
DROP_NOTICE_S = 60.0  # at most one spool_dropped notice this often (the first drop is reported at once)


@dataclass(slots=True)
class Record:
    """What a producer hands to the spool; `envelope` records get seq/boot_id/historical."""

    topic: str
    payload: bytes
    priority: int = Priority.TELEMETRY
    envelope: bool = True
    historical: bool = False

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic.encode("utf-8", "replace")) + _ROW_OVERHEAD


@dataclass(slots=True)
class SpoolRow:
    """A row handed to the uplink; (gen, id) names it even after the spool file was replaced."""

    id: int
    topic: str
    payload: bytes
    priority: int
    boot_id: str
    seq: int | None
    historical: bool
    gen: int = 0
    size: int = 0


@dataclass(slots=True)
class Cursor:
    """Where a consumer is in each priority class of one spool generation."""

    gen: int = -1
    after: dict[int, int] = field(default_factory=dict)


@dataclass
class _Job:
    """A request to the writer thread; its future answers the producer."""

    future: cf.Future[Any] = field(default_factory=cf.Future, init=False)


@dataclass
class _Put(_Job):
    """Store records (answers how many were dropped for space)."""

    records: list[Record]


@dataclass
class _Delete(_Job):
    """Delete rows the broker acknowledged (answers how many were still there)."""

    rows: list[SpoolRow]


@dataclass
class _Quarantine(_Job):
    """Move the file aside and salvage it; `gen` set: only if that generation's file is still the open one."""

    reason: str
    gen: int | None = None


def _settle(future: cf.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    """Resolve a producer's future; one whose waiter was cancelled (a driver restarting) is skipped."""
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except cf.InvalidStateError:
        pass


class SpoolClosed(RuntimeError):
    """The spool was closed (shutdown)."""


class SpoolUnavailable(RuntimeError):
    """The spool cannot store records right now (disk full, I/O error, locked, read-only); retried by itself."""


class SpoolFileLost(RuntimeError):
    """The file under the open connection was deleted or replaced: its commits would not survive a restart."""


class _QuickCheckFailed(sqlite3.DatabaseError):
    pass


@dataclass
class _Orphan:
    """A connection to a file that was deleted under the spool: still readable until its rows are carried over."""

    db: sqlite3.Connection
    delivered: set[int]
    after: int = 0  # rows up to this id are already in the new file


def is_corruption(exc: BaseException) -> bool:
    """True only for damage to the file itself; full, I/O, locked, read-only and open errors are transient."""
    if isinstance(exc, _QuickCheckFailed):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPT_CODES


def describe(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{name}: {exc}" if name else f"{type(exc).__name__}: {exc}"


def disk_bytes(path: Path) -> int:
    """What the spool file and its WAL take on disk (allocated blocks, not apparent size)."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            st = Path(str(path) + suffix).stat()
        except OSError:
            continue
        total += st.st_blocks * 512
    return total


class Spool:
    """One writer thread owns the write connection; readers use their own connection."""

    def __init__(self, path: Path, max_bytes: int, boot_id: str, log: KvLogger) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.boot_id = boot_id
        self.log = log
        self.depth = 0
        self.bytes = 0
        self.dropped: dict[str, int] = {p.name.lower(): 0 for p in Priority}
        self.refused = 0  # records refused while degraded
        self.salvaged = 0
        self.files_lost = 0  # times the file was deleted or replaced under the open connection
        self.commits = 0
        self.vacuumed_pages = 0
        self.notices: list[dict[str, Any]] = []
        self.state = "closed"  # ok | degraded | closed
        self.degraded_reason = ""
        self.gen = 0
        self.quarantined: list[Path] = []
        self._seq = 0
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._closing = False
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # id -> size of rows handed to the uplink, awaiting PUBACK
        self._acked: dict[int, SpoolRow] = {}  # delivered rows the spool could not delete yet: never sent again
        self._inflight_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._probe = Backoff(0.5, 10.0)
        self._probe_at = 0.0
        self.busy_timeout_s = 5.0  # how long a write waits for another process's lock before it counts as a fault
        self._to_salvage: dict[Path, set[int]] = {}  # quarantined files with rows left, ids already delivered
        self._orphans: list[_Orphan] = []
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._drops_noticed = 0
        self._drop_notice_at = 0.0
        self._vacuum_more = False

    # -- budget ---------------------------------------------------------------------------
    @property
    def wal_allowance(self) -> int:
        return max(256 * 1024, min(8 * 1024 * 1024, self.max_bytes // 16))

    @property
    def quarantine_bytes(self) -> int:
        return sum(disk_bytes(p) for p in self.quarantined)

    @property
    def budget(self) -> int:
        """Bytes the live rows may take: max_bytes less the WAL's share and quarantined files."""
        return max(0, self.max_bytes - self.wal_allowance - self.quarantine_bytes)

    # -- opening and recovery -------------------------------------------------------------
    def open(self) -> None:
        """Open (or repair) the file and start the writer; a transient error starts it degraded, not dead.

        A salvage an earlier run did not finish (its marker file is still there) goes on where it stopped."""
        self.quarantined = sorted(p for p in self.path.parent.glob(self.path.name + ".corrupt-*")
                                  if not p.name.endswith(("-wal", "-shm", SALVAGE_MARK)))
        self._to_salvage = {p: read_delivered(p) for p in self.quarantined if salvage_marker(p).exists()}
        for marker in self.path.parent.glob(self.path.name + ".corrupt-*" + SALVAGE_MARK):
            if Path(str(marker)[:-len(SALVAGE_MARK)]) not in self._to_salvage:  # a crash before the move
                marker.unlink(missing_ok=True)
        try:
            self._open_db()
            self.state = "ok"
        except Exception as exc:
            if is_corruption(exc):
                self._quarantine(describe(exc))
            else:
                self._degrade(exc)
        if self.state == "ok":
            self._salvage_pending()
        if self.state == "ok":
            self.log.info("spool_open", path=self.path, depth=self.depth, bytes=self.bytes,
                          max_bytes=self.max_bytes)
        self._thread = threading.Thread(target=self._writer, name="spool-writer", daemon=True)
        self._thread.start()

    def _connect(self, uri: str | None = None) -> sqlite3.Connection:
        db = sqlite3.connect(uri or self.path, isolation_level=None, check_same_thread=False,
                             timeout=self.busy_timeout_s, uri=uri is not None)
        try:
            if uri is None:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute(f"PRAGMA journal_size_limit={self.wal_allowance}")
                db.execute(f"PRAGMA wal_autocheckpoint={max(64, min(1000, self.wal_allowance // 8192))}")
        except BaseException:
            db.close()
            raise
        return db

    def _open_db(self) -> None:
        """Connect, check and migrate; raises sqlite3.Error (corrupt or transient) with nothing left open."""
        self._close_dbs()
        self.path.parent.mkdir(parents=True, exist_ok=True)  # also after the data dir was deleted
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        db = self._connect()
        try:
            if fresh:
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            result = db.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise _QuickCheckFailed(f"quick_check: {result}")
            db.executescript(_SCHEMA)
            if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                self._migrate_auto_vacuum(db)
            reader = self._connect()
            st = self.path.stat()
        except BaseException:
            db.close()
            raise
        self._db, self._reader = db, reader
        self._file_id = (st.st_dev, st.st_ino)
        self.depth, self.bytes = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM msgs").fetchone()

    def _migrate_auto_vacuum(self, db: sqlite3.Connection) -> None:
        """A spool made before incremental vacuum: switch it over (VACUUM needs room; retried next open)."""
        try:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("VACUUM")
            self.log.info("spool_migrated", path=self.path, auto_vacuum="incremental")
        except sqlite3.Error as exc:
            if is_corruption(exc):
                raise
            self.log.warning("spool_migrate_deferred", path=self.path, error=describe(exc))

    def _close_dbs(self) -> None:
        with self._reader_lock:
            for db in (self._db, self._reader):
                if db is not None:
                    try:
                        db.close()
                    except sqlite3.Error:
                        pass
            self._db = self._reader = None

    def _degrade(self, exc: BaseException) -> None:
        reason = describe(exc)
        if self.state != "degraded":
            self._probe.reset()
            self.log.error("spool_degraded", path=self.path, reason=reason, depth=self.depth)
            self.notices.append({"kind": "spool_degraded", "reason": reason, "path": str(self.path)})
        self.state, self.degraded_reason = "degraded", reason
        self._probe_at = time.monotonic() + self._probe.next()

    def _try_resume(self) -> None:
        """While degraded: reopen and prove a real write fits; only then accept records again."""
        try:
            self._open_db()
            assert self._db is not None
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO probe(x) VALUES (zeroblob(?))", (_PROBE_BYTES,))
                self._db.execute("DELETE FROM probe")
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            carried = self._carry_over()
        except Exception as exc:
            if is_corruption(exc):
                self._quarantine(describe(exc))
                return
            self._degrade(exc)  # connections that opened stay open: the backlog can still be read and sent
            return
        self.state, self.degraded_reason = "ok", ""
        self._salvage_pending()
        if self.state != "ok":
            return
        notice: dict[str, Any] = {"kind": "spool_resumed", "path": str(self.path), "refused": self.refused}
        if carried is not None:
            notice["carried_over"] = carried
        self.log.info("spool_resumed", path=self.path, depth=self.depth, refused=self.refused, carried_over=carried)
        self.notices.append(notice)

    def _lost_reason(self) -> str | None:
        """Why the path no longer names the open file (deleted, replaced), or None while it does."""
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return "deleted"
        except OSError:
            return None  # EIO, EACCES: SQLite's own errors tell those
        return None if (st.st_dev, st.st_ino) == self._file_id else "replaced"

    def _relocate(self, reason: str) -> bool:
        """The file was deleted or replaced while open (`rm -rf` of the data dir): set the connection aside,
        start a fresh file at the path and carry over what the broker does not have; True once done."""
        self.files_lost += 1
        self.log.error("spool_file_lost", path=self.path, reason=reason, depth=self.depth)
        with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        with self._inflight_lock:  # ids of the old file mean nothing in the new one
            delivered = set(self._acked)
            self._acked.clear()
            self._inflight.clear()
            self.gen += 1
        if self._db is not None:
            self._orphans.append(_Orphan(self._db, delivered))
            self._db = None
        self.quarantined = [p for p in self.quarantined if p.exists()]
        for gone in [p for p in self._to_salvage if not p.exists()]:
            del self._to_salvage[gone]
        self._degrade(SpoolFileLost(f"{self.path} was {reason} while open"))
        self._try_resume()
        return self.state == "ok"

    def _carry_over(self) -> int | None:
        """Copy the rows of files deleted under the spool into the open one, a commit per chunk (a retry
        goes on after the last chunk); None when there was nothing to carry."""
        if not self._orphans:
            return None
        copied = 0
        while self._orphans:
            orphan = self._orphans[0]
            while True:
                rows = orphan.db.execute(
                    "SELECT id, prio, topic, boot_id, seq, historical, created, payload, size FROM msgs "
                    "WHERE id>? ORDER BY id LIMIT ?", (orphan.after, _CARRY_ROWS)).fetchall()
                if not rows:
                    break
                keep = [r[1:] for r in rows if r[0] not in orphan.delivered]
                if keep:
                    self._insert_rows_committed(keep)
                orphan.after = rows[-1][0]
                copied += len(keep)
            orphan.db.close()
            self._orphans.pop(0)
        fsync_dir(self.path.parent)
        fsync_dir(self.path.parent.parent)
        self.log.warning("spool_carried_over", path=self.path, rows=copied)
        return copied

    def _quarantine(self, reason: str) -> None:
        """Move a corrupt file aside under a unique name, salvage its readable rows, start a fresh spool."""
        self._close_dbs()
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{uuid.uuid4().hex[:8]}")
        self.gen += 1
        with self._inflight_lock:
            self._inflight.clear()
            delivered = set(self._acked)
            self._acked.clear()
        self._mark_for_salvage(aside, delivered)
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        fsync_dir(self.path.parent)
        self._to_salvage[aside] = delivered
        self.quarantined.append(aside)
        self.log.error("spool_corrupt", path=self.path, moved_to=aside, reason=reason)
        try:
            self._open_db()
            self._carry_over()
            self.state, self.degraded_reason = "ok", ""
        except Exception as exc:  # a disk that cannot even hold a fresh file: degraded, retried
            self._degrade(exc)
            self.notices.append({"kind": "spool_corrupt", "moved_to": str(aside), "reason": reason, "salvaged": 0})
            return
        salvaged, unreadable = self._salvage_pending().get(aside, (0, 0))
        self._prune_quarantine()
        self.notices.append({"kind": "spool_corrupt", "moved_to": str(aside), "reason": reason,
                             "salvaged": salvaged, "unreadable_ranges": unreadable})

    def _mark_for_salvage(self, aside: Path, delivered: set[int]) -> None:
        """Written before the file is moved aside, so a restart finds the salvage to do (an empty marker
        if the disk is too full for the ids)."""
        marker = salvage_marker(aside)
        try:
            write_marker(aside, delivered)
        except OSError as exc:
            self.log.warning("spool_salvage_marker_short", path=marker, error=describe(exc))
            try:
                marker.touch()
            except OSError as again:
                self.log.error("spool_salvage_marker_failed", path=marker, error=describe(again))

    def _salvage_pending(self) -> dict[Path, tuple[int, int]]:
        """Salvage every quarantined file with rows left (this run's or one an earlier run did not finish);
        a write that fails leaves the rest for the next resume. Returns (rows, unreadable ranges) by file."""
        done: dict[Path, tuple[int, int]] = {}
        db = self._db
        for aside, delivered in list(self._to_salvage.items()):
            try:
                rows, unreadable = self._salvage(aside, delivered)
                self._to_salvage.pop(aside, None)
                salvage_marker(aside).unlink(missing_ok=True)  # first: a crash now must not salvage it again
                fsync_dir(aside.parent)
                if self._db is not None:
                    self._db.execute("DELETE FROM salvage WHERE source=?", (aside.name,))
            except (sqlite3.Error, OSError) as exc:
                self.log.error("spool_salvage_interrupted", source=aside, error=describe(exc))
                if not is_corruption(exc):
                    self._degrade(exc)
                return done
            self.salvaged += rows
            self.log.warning("spool_salvaged", source=aside, rows=rows, unreadable_ranges=unreadable)
            done[aside] = (rows, unreadable)
        if db is not None and not self._to_salvage:
            try:
                if db.execute("SELECT 1 FROM salvage LIMIT 1").fetchone():  # left by a crash after a marker went
                    db.execute("DELETE FROM salvage")
            except sqlite3.Error as exc:
                self.log.warning("spool_salvage_cleanup_failed", error=describe(exc))
        return done

    def _salvage(self, aside: Path, delivered: set[int]) -> tuple[int, int]:
        """Copy every row that can still be read (range by range, halving around bad pages), but those
        the broker already has. Progress commits with the rows it copied, so a killed salvage goes on
        where it stopped and copies no row twice."""
        src = open_damaged(aside, self._connect)
        if src is None:
            return 0, 1
        copied = 0
        try:
            assert self._db is not None
            done = self._db.execute("SELECT next_id FROM salvage WHERE source=?", (aside.name,)).fetchone()
            reader = DamagedReader(src, done[0] if done else 1, delivered, tuple(int(p) for p in Priority),
                                   int(Priority.TELEMETRY))
            for rows, next_id in reader.chunks():
                self._insert_rows_committed(rows, (aside.name, next_id))
                copied += len(rows)
        finally:
            src.close()
        if self.bytes > self.budget and self._db is not None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            self._evict(db, 0, int(Priority.ALARM))
            db.execute("COMMIT")
        return copied, reader.bad

    def _insert_rows_committed(self, rows: list[tuple[Any, ...]], progress: tuple[str, int] | None = None) -> None:
        """One commit; with `progress` (source, next id) the salvage's place is stored in the same commit."""
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            self._insert_rows(db, rows)
            if progress is not None:
                db.execute("INSERT INTO salvage(source, next_id) VALUES (?, ?) "
                           "ON CONFLICT(source) DO UPDATE SET next_id=excluded.next_id", progress)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.depth += len(rows)
        self.bytes += sum(r[-1] for r in rows)

    def _prune_quarantine(self) -> None:
        """Quarantined files count against max_bytes: the oldest go once they take more than their share."""
        while self.quarantined and self.quarantine_bytes > self.max_bytes * _QUARANTINE_SHARE:
            old = self.quarantined.pop(0)
            self._to_salvage.pop(old, None)
            for suffix in ("", "-wal", "-shm", SALVAGE_MARK):
                Path(str(old) + suffix).unlink(missing_ok=True)
            self.log.warning("spool_quarantine_pruned", removed=old, reason="disk budget")

    # -- producer side --------------------------------------------------------------------
    def _submit(self, job: _Job) -> cf.Future[Any]:
        with self._cond:
            if self._closing:
                raise SpoolClosed("spool is closed")
            if self.state == "degraded" and isinstance(job, _Put):
                self.refused += len(job.records)
                raise SpoolUnavailable(f"spool unavailable ({self.degraded_reason}); not stored")
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    async def put(self, records: list[Record]) -> int:
        """Return once every record is committed or dropped for space: how many were dropped (0 = all durable);
        SpoolUnavailable if none was stored."""
        return await asyncio.wrap_future(self._submit(_Put(records)))  # type: ignore[no-any-return]

    def put_sync(self, records: list[Record]) -> int:
        return self._submit(_Put(records)).result()  # type: ignore[no-any-return]

    async def delete(self, rows: list[SpoolRow]) -> int:
        """Delete acknowledged rows; rows of an earlier spool generation are only forgotten."""
        return await asyncio.wrap_future(self._submit(_Delete(rows)))  # type: ignore[no-any-return]

    def delete_sync(self, rows: list[SpoolRow]) -> int:
        return self._submit(_Delete(rows)).result()  # type: ignore[no-any-return]

    def quarantine_sync(self, reason: str) -> None:
        """Move the file aside and salvage it as if it were corrupt, on the writer thread (repair, tests)."""
        self._submit(_Quarantine(reason)).result()

    def quarantine_if_current(self, gen: int, reason: str) -> bool:
        """A reader met damage no write touched: quarantine generation `gen`'s file on the writer thread,
        unless it was replaced meanwhile; True if it was moved aside."""
        return bool(self._submit(_Quarantine(reason, gen)).result())

    def release(self, rows: Iterable[SpoolRow]) -> None:
        """Rows the uplink will not acknowledge after all (connection lost, refused): evictable again."""
        with self._inflight_lock:
            for row in rows:
                if row.gen == self.gen:
                    self._inflight.pop(row.id, None)

    def release_all(self) -> None:
        """A new uplink session: nothing handed out before can still be acknowledged on it."""
        with self._inflight_lock:
            self._inflight.clear()

    # -- consumer side --------------------------------------------------------------------
    def fetch(self, limit: int, cursor: Cursor | None = None) -> list[SpoolRow]:
        """Highest priority first, oldest first within one; marks the rows in flight and moves the cursor.

        A cursor from an earlier generation (the file was replaced) starts again from the top."""
        cursor = cursor if cursor is not None else Cursor()
        out: list[SpoolRow] = []
        with self._reader_lock:
            reader = self._reader
            if reader is None:
                raise SpoolUnavailable(f"spool unavailable ({self.degraded_reason or self.state})")
            gen = self.gen
            if cursor.gen != gen:
                cursor.gen, cursor.after = gen, {}
            with self._inflight_lock:
                inflight = set(self._inflight) | set(self._acked)
            for prio in sorted((int(p) for p in Priority), reverse=True):
                while len(out) < limit:
                    want = limit - len(out)
                    rows = reader.execute(
                        "SELECT id, topic, payload, prio, boot_id, seq, historical, size FROM msgs "
                        "WHERE prio=? AND id>? ORDER BY id LIMIT ?",
                        (prio, cursor.after.get(prio, 0), want)).fetchall()
                    if not rows:
                        break
                    cursor.after[prio] = rows[-1][0]
                    out.extend(SpoolRow(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], bool(r[6]), gen, r[7])
                               for r in rows if r[0] not in inflight)
                    if len(rows) < want:
                        break
        with self._inflight_lock:
            if gen == self.gen:
                for row in out:
                    self._inflight[row.id] = row.size
        return out

    def inflight(self) -> int:
        with self._inflight_lock:
            return len(self._inflight)

    def delete_pending(self) -> int:
        with self._inflight_lock:
            return len(self._acked)

    def stats(self) -> dict[str, Any]:
        return {"spool_state": self.state, "spool_degraded_reason": self.degraded_reason or None,
                "spool_depth": self.depth, "spool_bytes": self.bytes, "spool_max_bytes": self.max_bytes,
                "spool_disk_bytes": disk_bytes(self.path), "spool_inflight": self.inflight(),
                "spool_delete_pending": self.delete_pending(),
                "spool_dropped": sum(self.dropped.values()), "spool_dropped_by_priority": dict(self.dropped),
                "spool_refused": self.refused, "spool_salvaged": self.salvaged, "spool_files_lost": self.files_lost,
                "spool_quarantined": [str(p) for p in self.quarantined],
                "spool_quarantine_bytes": self.quarantine_bytes}

    # -- writer thread --------------------------------------------------------------------
    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    if self._vacuum_more and self.state == "ok":
                        if not self._cond.wait(0.05):
                            break  # idle: one more vacuum step
                    elif self.state == "degraded":
                        wait = self._probe_at - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                jobs, self._jobs = self._jobs, []
                closing = self._closing
            if self.state == "degraded" and time.monotonic() >= self._probe_at:
                self._try_resume()
            if self.state != "ok":
                exc = SpoolUnavailable(f"spool unavailable ({self.degraded_reason})")
                for job in jobs:
                    if isinstance(job, _Delete):
                        self._defer_deletes(job.rows)
                    _settle(job.future, exc=exc)
                if closing:
                    return
                continue
            if not jobs and self._acked:
                try:
                    self._apply([])  # deletes deferred while the spool could not write
                except Exception as exc:
                    self._fail([], exc)
            if not jobs:
                if closing:
                    return
                if self._vacuum_more and self.state == "ok":
                    self._vacuum_more = self._vacuum_if_worth_it()
                continue
            try:
                self._run(jobs)
            except Exception as exc:  # a bug must reach the producers, never end the writer thread
                self.log.error("spool_writer_error", error=describe(exc))
                for job in jobs:
                    _settle(job.future, exc=exc)

    def _run(self, jobs: list[_Job]) -> None:
        for job in jobs:
            if isinstance(job, _Quarantine):
                current = job.gen is None or job.gen == self.gen
                if current:  # a file already replaced is not moved aside again
                    self._quarantine(job.reason)
                _settle(job.future, current)
        jobs = [j for j in jobs if not isinstance(j, _Quarantine)]
        if not jobs:
            return
        try:
            results = self._apply(jobs)
        except Exception as exc:
            if is_corruption(exc):
                self._quarantine(describe(exc))
                if self.state == "ok":
                    try:
                        results = self._apply(jobs)
                    except Exception as again:
                        self._fail(jobs, again)
                        return
                else:
                    self._fail(jobs, exc)
                    return
            else:
                self._fail(jobs, exc)
                return
        for job, result in zip(jobs, results):
            _settle(job.future, result)
        self._vacuum_more = self._vacuum_if_worth_it()

    def _fail(self, jobs: list[_Job], exc: BaseException) -> None:
        """A transient error: nothing of this batch is stored; producers hear it, the file is kept."""
        self.log.error("spool_write_failed", error=describe(exc), jobs=len(jobs))
        if not isinstance(exc, SpoolUnavailable):
            self._degrade(exc)
        err = SpoolUnavailable(f"spool unavailable ({describe(exc)}); not stored")
        for job in jobs:
            match job:
                case _Put(records=records):
                    self.refused += len(records)
                case _Delete(rows=rows):
                    self._defer_deletes(rows)
            _settle(job.future, exc=err)

    def _defer_deletes(self, rows: Iterable[SpoolRow]) -> None:
        """The broker has these rows: keep them out of every fetch until a delete succeeds, so an outage
        of the disk does not turn into duplicates at the COC."""
        with self._inflight_lock:
            for row in rows:
                if row.gen == self.gen:
                    self._inflight.pop(row.id, None)
                    self._acked[row.id] = row

    def _apply(self, jobs: list[_Job]) -> list[Any]:
        db = self._db
        if db is None:
            raise SpoolUnavailable(f"spool unavailable ({self.degraded_reason or 'not open'})")
        saved = (self._seq, self.bytes, self.depth, dict(self.dropped))
        results: list[Any] = []
        freed: list[SpoolRow] = []
        with self._inflight_lock:
            deferred = list(self._acked.values())
        try:
            db.execute("BEGIN IMMEDIATE")
            if deferred:
                self._delete(db, deferred)
            for job in jobs:
                match job:
                    case _Put(records=records):
                        results.append(self._insert(db, records))
                    case _Delete(rows=rows):
                        results.append(self._delete(db, rows))
                        freed.extend(rows)
                    case _:
                        raise TypeError(f"the writer cannot apply {type(job).__name__}")
            db.execute("COMMIT")
        except BaseException:
            self._seq, self.bytes, self.depth, self.dropped = saved
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self.release(freed)
        if deferred:
            with self._inflight_lock:
                for row in deferred:
                    self._acked.pop(row.id, None)
        self.commits += 1
        self._note_drops()
        lost = self._lost_reason()
        if lost is not None and not self._relocate(lost):
            raise SpoolUnavailable(f"spool unavailable ({self.degraded_reason})")
        return results

    def _note_drops(self) -> None:
        """Records dropped for space become a spool_dropped notice: at once, then at most every DROP_NOTICE_S."""
        total = sum(self.dropped.values())
        now = time.monotonic()
        if total == self._drops_noticed or now < self._drop_notice_at:
            return
        self.notices.append({"kind": "spool_dropped", "dropped": total - self._drops_noticed, "dropped_total": total,
                             "dropped_by_priority": dict(self.dropped)})
        self._drops_noticed = total
        self._drop_notice_at = now + DROP_NOTICE_S

    def _insert(self, db: sqlite3.Connection, records: list[Record]) -> int:
        now = time.time()
        dropped = 0
        rows: list[tuple[Any, ...]] = []
        budget = self.budget
        for rec in records:
            size = rec.size
            if self.bytes + size > budget:
                self._insert_rows(db, rows)  # rows of this batch must be visible to eviction
                rows = []
                if not self._evict(db, size, rec.priority, budget):
                    self._count_drop(rec.priority)
                    dropped += 1
                    if rec.envelope:
                        self._seq += 1  # its seq is skipped: the COC sees the gap
                    continue
            seq = None
            if rec.envelope:
                self._seq += 1
                seq = self._seq
            rows.append((rec.priority, rec.topic, self.boot_id, seq, int(rec.historical), now, rec.payload, size))
            self.bytes += size
            self.depth += 1
        self._insert_rows(db, rows)
        return dropped

    @staticmethod
    def _insert_rows(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            db.executemany("INSERT INTO msgs(prio, topic, boot_id, seq, historical, created, payload, size) "
                           "VALUES (?,?,?,?,?,?,?,?)", rows)

    def _evict(self, db: sqlite3.Connection, need: int, priority: int, budget: int | None = None) -> bool:
        """Make room for `need` bytes from the lowest-priority oldest rows (never above `priority`,
        never a row awaiting PUBACK); deletes nothing unless the record will then fit."""
        budget = self.budget if budget is None else budget
        if need > budget:
            return False
        with self._inflight_lock:
            inflight = set(self._inflight) | set(self._acked)
        victims: list[tuple[int, int, int]] = []
        freed = 0
        for prio in range(0, priority + 1):
            after = 0
            while self.bytes - freed + need > budget:
                batch = db.execute("SELECT id, size FROM msgs WHERE prio=? AND id>? ORDER BY id LIMIT 256",
                                   (prio, after)).fetchall()
                if not batch:
                    break
                after = batch[-1][0]
                for vid, vsize in batch:
                    if vid in inflight:
                        continue
                    victims.append((vid, vsize, prio))
                    freed += vsize
                    if self.bytes - freed + need <= budget:
                        break
            if self.bytes - freed + need <= budget:
                break
        if self.bytes - freed + need > budget:
            return False
        db.executemany("DELETE FROM msgs WHERE id=?", [(v[0],) for v in victims])
        for _, vsize, prio in victims:
            self.bytes -= vsize
            self.depth -= 1
            self._count_drop(prio)
        return True

    def _count_drop(self, prio: int) -> None:
        name = Priority(prio).name.lower()
        if self.dropped[name] == 0 or self.dropped[name] % 1000 == 0:
            self.log.warning("spool_full_drop", priority=name, dropped=self.dropped[name] + 1,
                             bytes=self.bytes, max_bytes=self.max_bytes)
        self.dropped[name] += 1

    def _delete(self, db: sqlite3.Connection, rows: list[SpoolRow]) -> int:
        # rows of an earlier generation are skipped: that file is gone, its rows were salvaged under new ids
        live = [row for row in rows if row.gen == self.gen]
        if not live:
            return 0
        ids = ",".join([str(row.id) for row in live])
        # one statement, one SQLite step for the whole batch: a step per row would hand the GIL to paho's
        # thread and wait to get it back, a thousand times per batch
        gone = db.execute("DELETE FROM msgs WHERE id IN (SELECT value FROM json_each(?))", (f"[{ids}]",)).rowcount
        if gone == len(live):
            self.bytes -= sum(row.size for row in live)
            self.depth -= gone
        else:  # some were no longer there (removed by hand): count the table again
            self.depth, self.bytes = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM msgs").fetchone()
        return gone

    def _vacuum_if_worth_it(self) -> bool:
        """Give freed pages back to the file system a step at a time once most of the file is free
        (a drained backlog), so moving the few live pages stays cheap; True if more remains."""
        db = self._db
        if db is None:
            return False
        try:
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            if free < 32 or free * 4 < pages * 3:
                return False
            # a step's moved pages all go through the WAL before the file shrinks: keep one step well inside
            # the WAL's share of max_bytes, and checkpoint at once so the file on disk shrinks now, not at
            # the next autocheckpoint (the file plus a grown WAL went over max_bytes)
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            step = min(free, _VACUUM_STEP_PAGES, max(32, self.wal_allowance // page_size // 4))
            # executescript steps the pragma to the end; execute() would free a single page
            db.executescript(f"PRAGMA incremental_vacuum({step});")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            self.vacuumed_pages += step
            return free > step
        except sqlite3.Error as exc:
            self.log.warning("spool_vacuum_failed", error=describe(exc))
            return False

    def close(self) -> None:
        """Commit what is queued, then stop the writer; later puts raise SpoolClosed."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_dbs()
        for orphan in self._orphans:
            orphan.db.close()
        self._orphans.clear()
        self.state = "closed"

    def writer_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
