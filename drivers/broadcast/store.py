"""The persisted schedule and the as-run log: SQLite in the driver's data dir, shared with the CLI."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from drivers.broadcast.bulletin import Bulletin, from_json, to_json

DB_FILE = "broadcast.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bulletins (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    cursor REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS asrun (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    bulletin_id TEXT NOT NULL,
    title TEXT,
    zone TEXT NOT NULL,
    priority TEXT,
    repeat INTEGER,
    scheduled REAL NOT NULL,
    started REAL,
    ended REAL,
    lateness_ms REAL,
    outcome TEXT NOT NULL,
    reason TEXT,
    engine TEXT,
    event_id TEXT,
    heard TEXT,
    level_dbfs REAL
);
CREATE INDEX IF NOT EXISTS asrun_scheduled ON asrun(scheduled);
CREATE INDEX IF NOT EXISTS asrun_bulletin ON asrun(bulletin_id, scheduled);
"""
ASRUN_FIELDS = ("bulletin_id", "title", "zone", "priority", "repeat", "scheduled", "started", "ended",
                "lateness_ms", "outcome", "reason", "engine", "event_id", "heard", "level_dbfs")
_ADDED_COLUMNS = {"heard": "TEXT", "level_dbfs": "REAL"}  # as-run columns newer than the first schema

_INSERT_ASRUN = f"INSERT INTO asrun({', '.join(ASRUN_FIELDS)}) VALUES ({', '.join('?' * len(ASRUN_FIELDS))})"


@dataclass(frozen=True)
class BulletinRecord:
    """A bulletin as the store keeps it: where it came from, its status and how far its airings have gone."""

    bulletin: Bulletin
    source: str
    status: str
    cursor: float
    updated: float


class Store:
    """One connection per user (driver loop, CLI); WAL so they never block each other for long."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=10, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._add_columns()

    def _add_columns(self) -> None:
        """A log written by an older release gains the newer columns (its old rows read as NULL there)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(asrun)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in have:
                try:
                    self.db.execute(f"ALTER TABLE asrun ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # the driver and the CLI opened it at the same moment
                    if "duplicate column" not in str(exc):
                        raise

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """An explicit write transaction: the connection is in autocommit mode otherwise."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def data_version(self) -> int:
        """Changes when another connection (the CLI) commits: the driver's cue to reload."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def put(self, b: Bulletin, source: str, cursor: float | None = None) -> bool:
        """Insert or update (reactivating a cancelled one); returns True if it was new. Keeps the cursor."""
        now = time.time()
        with self._tx():
            row = self.db.execute("SELECT 1 FROM bulletins WHERE id=?", (b.id,)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO bulletins(id, body, source, status, cursor, updated) VALUES (?,?,?,?,?,?)",
                                (b.id, to_json(b), source, "active", now if cursor is None else cursor, now))
                return True
            self.db.execute("UPDATE bulletins SET body=?, source=?, status='active', updated=? WHERE id=?",
                            (to_json(b), source, now, b.id))
            if cursor is not None:
                self.db.execute("UPDATE bulletins SET cursor=? WHERE id=?", (cursor, b.id))
            return False

    def cancel(self, bulletin_id: str) -> bool:
        with self._tx():
            cur = self.db.execute("UPDATE bulletins SET status='cancelled', updated=? WHERE id=? AND status='active'",
                                  (time.time(), bulletin_id))
            return cur.rowcount > 0

    def set_cursor(self, bulletin_id: str, cursor: float) -> None:
        with self._tx():
            self.db.execute("UPDATE bulletins SET cursor=? WHERE id=? AND cursor<?", (cursor, bulletin_id, cursor))

    def get(self, bulletin_id: str) -> BulletinRecord | None:
        row = self.db.execute("SELECT body, source, status, cursor, updated FROM bulletins WHERE id=?",
                              (bulletin_id,)).fetchone()
        return BulletinRecord(from_json(row[0]), *row[1:]) if row else None

    def all(self, include_cancelled: bool = False) -> list[BulletinRecord]:
        sql = "SELECT body, source, status, cursor, updated FROM bulletins"
        if not include_cancelled:
            sql += " WHERE status='active'"
        return [BulletinRecord(from_json(r[0]), *r[1:]) for r in self.db.execute(sql + " ORDER BY id")]

    def add_asrun(self, record: dict[str, Any]) -> int:
        with self._tx():
            cur = self.db.execute(_INSERT_ASRUN, tuple(record.get(k) for k in ASRUN_FIELDS))
            return int(cur.lastrowid or 0)

    def asrun(self, limit: int = 50, bulletin_id: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT seq, {', '.join(ASRUN_FIELDS)} FROM asrun"
        args: tuple[Any, ...] = ()
        if bulletin_id:
            sql += " WHERE bulletin_id=?"
            args = (bulletin_id,)
        rows = self.db.execute(sql + " ORDER BY seq DESC LIMIT ?", args + (limit,)).fetchall()
        return [dict(zip(("seq",) + ASRUN_FIELDS, r)) for r in reversed(rows)]

    def prune_asrun(self, older_than: float) -> int:
        with self._tx():
            return self.db.execute("DELETE FROM asrun WHERE scheduled < ?", (older_than,)).rowcount

    @staticmethod
    def _asrun_where(start: float | None, end: float | None, bulletin_id: str | None, zone: str | None,
                     outcome: str | None) -> tuple[str, tuple[Any, ...]]:
        conds, args = [], []
        for cond, value in (("scheduled >= ?", start), ("scheduled < ?", end), ("bulletin_id = ?", bulletin_id),
                            ("zone = ?", zone), ("outcome = ?", outcome)):
            if value is not None and value != "":
                conds.append(cond)
                args.append(value)
        return (" WHERE " + " AND ".join(conds)) if conds else "", tuple(args)

    def asrun_find(self, start: float | None = None, end: float | None = None, bulletin_id: str | None = None,
                   zone: str | None = None, outcome: str | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Filtered as-run records, newest first, one page of them, with the total count."""
        where, args = self._asrun_where(start, end, bulletin_id, zone, outcome)
        total = int(self.db.execute(f"SELECT COUNT(*) FROM asrun{where}", args).fetchone()[0])
        rows = self.db.execute(f"SELECT seq, {', '.join(ASRUN_FIELDS)} FROM asrun{where} "
                               "ORDER BY scheduled DESC, seq DESC LIMIT ? OFFSET ?", args + (limit, offset)).fetchall()
        return total, [dict(zip(("seq",) + ASRUN_FIELDS, r)) for r in rows]

    def asrun_report(self, start: float, end: float) -> list[dict[str, Any]]:
        """Per bulletin and zone: airings planned, played, failed, skipped, interrupted, unreachable, heard on the
        monitor and not, and seconds on air (each airing's real start to end)."""
        rows = self.db.execute(
            "SELECT bulletin_id, MAX(title), zone, COUNT(*), "
            "SUM(outcome='played'), SUM(outcome='failed'), SUM(outcome='skipped'), SUM(outcome='interrupted'), "
            "SUM(outcome='unreachable'), SUM(heard='yes'), SUM(heard='no'), "
            "COALESCE(SUM(CASE WHEN started IS NOT NULL AND ended IS NOT NULL THEN ended-started END), 0) "
            "FROM asrun WHERE scheduled >= ? AND scheduled < ? GROUP BY bulletin_id, zone ORDER BY bulletin_id, zone",
            (start, end)).fetchall()
        keys = ("bulletin_id", "title", "zone", "planned", "played", "failed", "skipped", "interrupted", "unreachable",
                "heard", "not_heard", "on_air_s")
        return [dict(zip(keys, r)) for r in rows]

    def asrun_bulletins(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT bulletin_id FROM asrun ORDER BY bulletin_id")]
