"""A bounded history of the events the broker accepted (as-run records and audits included), kept on the box so
a COC that was away can catch up: `catch_up` pages through it. Its own SQLite file, never the spool: the spool
forgets a message once delivered; this remembers the last MAX_ROWS of them."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from agent.logs import KvLogger

MAX_ROWS = 20_000
MAX_BYTES = 16 * 1024 * 1024  # payload bytes kept at most; the oldest rows go first
PRUNE_EVERY = 200  # inserted rows between two prunes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hist (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    boot_id TEXT NOT NULL,
    seq INTEGER,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS hist_ts ON hist(ts);
CREATE INDEX IF NOT EXISTS hist_boot_seq ON hist(boot_id, seq);
CREATE TABLE IF NOT EXISTS pruned (boot_id TEXT PRIMARY KEY, max_seq INTEGER, max_ts REAL);
"""


class History:
    """Delivered events by arrival order; every call runs in a worker thread (one connection, one lock)."""

    def __init__(self, path: Path, log: KvLogger, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.log = log
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._since_prune = 0
        self.failures = 0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=5, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a lost tail after a power cut is still on the COC's side
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def add(self, rows: list[tuple[str, int | None, str, bytes]]) -> None:
        """(boot_id, seq, topic, payload as sent) of delivered messages; only events are kept."""
        kept = []
        for boot_id, seq, topic, payload in rows:
            if not topic.startswith("event/"):
                continue
            try:
                doc = json.loads(payload)
                ts = float(doc.get("ts", 0.0))
            except (ValueError, TypeError, AttributeError):
                continue
            kept.append((ts, boot_id, seq, topic[len("event/"):], payload))
        if not kept:
            return
        with self._lock:
            try:
                db = self._conn()
                db.executemany("INSERT INTO hist(ts, boot_id, seq, kind, payload) VALUES (?, ?, ?, ?, ?)", kept)
                self._since_prune += len(kept)
                if self._since_prune >= PRUNE_EVERY:
                    self._since_prune = 0
                    self._prune(db)
            except sqlite3.Error as exc:  # the history is a convenience: delivery never waits on it
                if self._db is not None and self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self.failures += 1
                self.log.warning("history_write_failed", error=str(exc))

    def _prune(self, db: sqlite3.Connection) -> None:
        self._forget(db, "id <= (SELECT MAX(id) FROM hist) - ?", (self.max_rows,))
        over = db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM hist").fetchone()[0] - self.max_bytes
        if over > 0:
            self._forget(db, "id <= (SELECT MIN(id) FROM hist) + (SELECT COUNT(*) FROM hist) / 4", ())

    @staticmethod
    def _forget(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> None:
        """Delete rows, remembering per boot how far the deleted ones reached (a catch-up from there is not
        complete)."""
        db.execute("BEGIN")
        db.execute(f"INSERT INTO pruned(boot_id, max_seq, max_ts) SELECT boot_id, MAX(seq), MAX(ts) FROM hist "
                   f"WHERE {where} GROUP BY boot_id ON CONFLICT(boot_id) DO UPDATE SET "
                   "max_seq = MAX(COALESCE(max_seq, 0), COALESCE(excluded.max_seq, 0)), "
                   "max_ts = MAX(max_ts, excluded.max_ts)", args)
        db.execute(f"DELETE FROM hist WHERE {where}", args)
        db.execute("COMMIT")

    def page(self, since_ts: float | None, boot_id: str | None, since_seq: int | None, kinds: list[str] | None,
             after: int, limit: int, max_bytes: int) -> dict[str, Any]:
        """Events after a time, or after (boot_id, seq), oldest first, from the row after `after`; each with
        historical:true. `complete` is False when the history no longer reaches back to the point asked for."""
        with self._lock:
            db = self._conn()
            where, args = ["id > ?"], [after]
            if since_seq is not None:
                found = db.execute("SELECT MAX(id) FROM hist WHERE boot_id = ? AND seq <= ?",
                                   (boot_id, since_seq)).fetchone()[0]
                if found is None:  # since_seq was telemetry, or older than what is kept: from that boot's next
                    first = db.execute("SELECT MIN(id) FROM hist WHERE boot_id = ? AND seq > ?",
                                       (boot_id, since_seq)).fetchone()[0]
                    found = first - 1 if first is not None else 0
                where.append("id > ?")
                args.append(found)
                gone = db.execute("SELECT MAX(max_seq) FROM pruned WHERE boot_id = ?", (boot_id,)).fetchone()[0]
                complete = gone is None or gone <= since_seq
            else:
                where.append("ts > ?")
                args.append(since_ts)
                gone = db.execute("SELECT MAX(max_ts) FROM pruned").fetchone()[0]
                complete = gone is None or gone <= (since_ts or 0.0)
            if kinds:
                where.append(f"kind IN ({', '.join('?' * len(kinds))})")
                args.extend(kinds)
            rows = db.execute(f"SELECT id, payload FROM hist WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                              (*args, limit + 1)).fetchall()
        items: list[Any] = []
        used, last = 0, after
        for rid, payload in rows[:limit]:
            doc = json.loads(payload)
            doc["historical"] = True
            size = len(payload) + 32
            if items and used + size > max_bytes:
                break
            if size > max_bytes:
                doc = {"seq": doc.get("seq"), "boot_id": doc.get("boot_id"), "id": doc.get("id"),
                       "kind": doc.get("kind"), "historical": True, "omitted_bytes": len(payload)}
            items.append(doc)
            used, last = used + size, rid
        more = len(items) < len(rows)
        return {"items": items, "page": after, "limit": limit, "next": last if more else None,
                "complete": complete}

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
