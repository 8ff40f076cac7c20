"""Who created, edited, cancelled or aired what: kept locally (SQLite) and sent to the COC as `audit` events."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from agent.driver import Context, Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    role TEXT,
    action TEXT NOT NULL,
    target TEXT,
    ok INTEGER NOT NULL,
    detail TEXT,
    address TEXT
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
"""
FIELDS = ("ts", "user", "role", "action", "target", "ok", "detail", "address")


class Audit:
    def __init__(self, path: Path, ctx: Context) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=10, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA cache_size=-256")
        self.db.executescript(_SCHEMA)
        self.ctx = ctx

    async def record(self, user: str, role: str | None, action: str, target: str | None, ok: bool,
                     detail: str | None = None, address: str | None = None) -> None:
        """Stored before it is emitted: the local trail is complete even while the COC is unreachable."""
        row = {"ts": round(time.time(), 3), "user": user, "role": role, "action": action, "target": target,
               "ok": bool(ok), "detail": (detail or "")[:500] or None, "address": address}
        self.db.execute(f"INSERT INTO audit({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})",
                        tuple(row[k] for k in FIELDS))
        self.ctx.log.info("audit", user=user, action=action, target=target, ok=ok)
        await self.ctx.emit(Event("audit", {**row, "actor": f"console:{user}"}, severity="info" if ok else "warning"))

    def recent(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT {', '.join(FIELDS)} FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        return [dict(zip(FIELDS, r)) for r in rows]

    def prune(self, older_than: float) -> None:
        self.db.execute("DELETE FROM audit WHERE ts < ?", (older_than,))

    def close(self) -> None:
        self.db.close()
