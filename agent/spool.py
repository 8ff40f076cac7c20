"""Durable store-and-forward queue: SQLite in WAL mode, group commit, bounded by bytes.

`put` returns only after the batch holding its records is committed with synchronous=FULL,
so a record whose put returned survives kill -9 and power loss. Many concurrent puts share
one commit (group commit): while one fsync runs, the next batch gathers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.driver import Priority
from agent.logs import KvLogger

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
"""
_ROW_OVERHEAD = 64  # bytes counted per row besides payload and topic: keeps tiny rows honest


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
        return len(self.payload) + len(self.topic) + _ROW_OVERHEAD


@dataclass(slots=True)
class Stored:
    id: int
    topic: str
    payload: bytes
    priority: int
    boot_id: str
    seq: int | None
    historical: bool

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic) + _ROW_OVERHEAD


@dataclass
class _Job:
    kind: str
    data: Any
    future: cf.Future[Any] = field(default_factory=cf.Future)


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
    pass


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
        self.commits = 0
        self.notices: list[dict[str, Any]] = []
        self._seq = 0
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._closing = False
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- opening and recovery -------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect_checked()
        except sqlite3.DatabaseError as exc:
            self._move_aside(str(exc))
            self._db = self._connect_checked()
        self._reader = self._connect()
        self.depth, self.bytes = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM msgs").fetchone()
        self.log.info("spool_open", path=self.path, depth=self.depth, bytes=self.bytes, max_bytes=self.max_bytes)
        self._thread = threading.Thread(target=self._writer, name="spool-writer", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _connect_checked(self) -> sqlite3.Connection:
        db = self._connect()
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {result}")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _move_aside(self, reason: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        self.log.error("spool_corrupt", path=self.path, moved_to=aside, reason=reason)
        self.notices.append({"kind": "spool_corrupt", "moved_to": str(aside), "reason": reason})

    # -- producer side --------------------------------------------------------------------
    def _submit(self, kind: str, data: Any) -> cf.Future[Any]:
        job = _Job(kind, data)
        with self._cond:
            if self._closing:
                raise SpoolClosed("spool is closed")
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    async def put(self, records: list[Record]) -> None:
        """Return once every record is committed (or counted as dropped for space)."""
        await asyncio.wrap_future(self._submit("put", records))

    def put_sync(self, records: list[Record]) -> None:
        self._submit("put", records).result()

    async def delete(self, ids: list[tuple[int, int]]) -> None:
        """Delete acknowledged rows, given as (id, size) pairs."""
        await asyncio.wrap_future(self._submit("delete", ids))

    def delete_sync(self, ids: list[tuple[int, int]]) -> None:
        self._submit("delete", ids).result()

    # -- consumer side --------------------------------------------------------------------
    def fetch(self, limit: int, after: dict[int, int] | None = None) -> list[Stored]:
        """Oldest first within each priority, highest priority first; `after` skips ids already in flight."""
        after = after or {}
        out: list[Stored] = []
        assert self._reader is not None
        with self._reader_lock:
            for prio in sorted((int(p) for p in Priority), reverse=True):
                if len(out) >= limit:
                    break
                rows = self._reader.execute(
                    "SELECT id, topic, payload, prio, boot_id, seq, historical FROM msgs "
                    "WHERE prio=? AND id>? ORDER BY id LIMIT ?", (prio, after.get(prio, 0), limit - len(out)))
                out.extend(Stored(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], bool(r[6])) for r in rows)
        return out

    def stats(self) -> dict[str, Any]:
        return {"spool_depth": self.depth, "spool_bytes": self.bytes, "spool_max_bytes": self.max_bytes,
                "spool_dropped": sum(self.dropped.values()), "spool_dropped_by_priority": dict(self.dropped)}

    # -- writer thread --------------------------------------------------------------------
    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                jobs, self._jobs = self._jobs, []
                if not jobs and self._closing:
                    return
            try:
                try:
                    results = self._apply(jobs)
                except sqlite3.DatabaseError as exc:
                    results = self._recover_and_retry(jobs, exc)
            except Exception as exc:  # disk full, I/O error: the producers must hear of it
                self.log.error("spool_write_failed", error=f"{type(exc).__name__}: {exc}", jobs=len(jobs))
                for job in jobs:
                    _settle(job.future, exc=exc)
                continue
            for job, result in zip(jobs, results):
                _settle(job.future, result)

    def _recover_and_retry(self, jobs: list[_Job], exc: Exception) -> list[Any]:
        assert self._db is not None
        self._db.close()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
            self._move_aside(str(exc))
            self._db = self._connect_checked()
            self._reader = self._connect()
        self.depth, self.bytes = 0, 0
        return self._apply(jobs)

    def _apply(self, jobs: list[_Job]) -> list[Any]:
        db = self._db
        assert db is not None
        results: list[Any] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                if job.kind == "put":
                    results.append(self._insert(db, job.data))
                elif job.kind == "delete":
                    results.append(self._delete(db, job.data))
                else:
                    raise ValueError(job.kind)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.commits += 1
        return results

    def _insert(self, db: sqlite3.Connection, records: list[Record]) -> int:
        now = time.time()
        dropped = 0
        rows = []
        for rec in records:
            size = rec.size
            if self.bytes + size > self.max_bytes:
                self._insert_rows(db, rows)  # rows of this batch must be visible to eviction
                rows = []
                if not self._make_room(db, size, rec.priority):
                    self._count_drop(rec.priority)
                    dropped += 1
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

    def _make_room(self, db: sqlite3.Connection, need: int, priority: int) -> bool:
        """Evict lowest-priority oldest rows (never above `priority`) until `need` fits."""
        if need > self.max_bytes:
            return False
        for prio in range(0, priority + 1):
            while self.bytes + need > self.max_bytes:
                victims = db.execute("SELECT id, size FROM msgs WHERE prio=? ORDER BY id LIMIT 256",
                                     (prio,)).fetchall()
                if not victims:
                    break
                for vid, vsize in victims:
                    db.execute("DELETE FROM msgs WHERE id=?", (vid,))
                    self.bytes -= vsize
                    self.depth -= 1
                    self._count_drop(prio)
                    if self.bytes + need <= self.max_bytes:
                        break
            if self.bytes + need <= self.max_bytes:
                return True
        return False

    def _count_drop(self, prio: int) -> None:
        name = Priority(prio).name.lower()
        if self.dropped[name] == 0 or self.dropped[name] % 1000 == 0:
            self.log.warning("spool_full_drop", priority=name, dropped=self.dropped[name] + 1,
                             bytes=self.bytes, max_bytes=self.max_bytes)
        self.dropped[name] += 1

    def _delete(self, db: sqlite3.Connection, ids: list[tuple[int, int]]) -> int:
        gone = 0
        for rid, size in ids:
            if db.execute("DELETE FROM msgs WHERE id=?", (rid,)).rowcount:
                self.bytes -= size
                self.depth -= 1
                gone += 1
        return gone

    def close(self) -> None:
        """Commit what is queued, then stop the writer; later puts raise SpoolClosed."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for db in (self._db, self._reader):
            if db is not None:
                db.close()
        self._db = self._reader = None

    def writer_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
