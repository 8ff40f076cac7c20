"""Salvage of a quarantined spool file: its marker (the rows the broker already has) and a reader that gets
every row still readable, range by range, halving around damaged pages."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

SALVAGE_MARK = ".salvage"  # next to a quarantined file whose salvage is not finished: the ids already delivered
_RANGE = 5000  # ids read per query while the pages are sound


def salvage_marker(aside: Path) -> Path:
    """The file that says a quarantined file still has rows to salvage (and which ids the broker has)."""
    return Path(str(aside) + SALVAGE_MARK)


def read_delivered(aside: Path) -> set[int]:
    """The ids the broker already has, from the marker; none if it is empty or unreadable."""
    try:
        ids = json.loads(salvage_marker(aside).read_text() or "[]")
        return {int(i) for i in ids} if isinstance(ids, list) else set()
    except (OSError, ValueError, TypeError):
        return set()


def write_marker(aside: Path, delivered: set[int]) -> None:
    """Written (and fsync'd) before the file is moved aside, so a restart finds the salvage to do."""
    with open(salvage_marker(aside), "w") as f:
        f.write(json.dumps(sorted(delivered)))
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_damaged(aside: Path, connect: Callable[[str], sqlite3.Connection]) -> sqlite3.Connection | None:
    """A read-only connection to a quarantined file (immutable if even that fails), None if none reads."""
    for uri in (f"file:{aside}?mode=ro", f"file:{aside}?immutable=1"):
        src: sqlite3.Connection | None = None
        try:
            src = connect(uri)
            src.execute("SELECT 1 FROM msgs LIMIT 1").fetchall()
            return src
        except sqlite3.Error:
            if src is not None:
                src.close()
    return None


class DamagedReader:
    """Reads a damaged file's rows from id `start` on, but those in `delivered`, as rows ready for the spool's
    INSERT (prio, topic, boot_id, seq, historical=1, created, payload, size); a priority not in `priorities`
    becomes `fallback`; `bad` counts unreadable ids."""

    def __init__(self, src: sqlite3.Connection, start: int, delivered: set[int], priorities: tuple[int, ...],
                 fallback: int) -> None:
        self.src, self.start, self.delivered = src, start, delivered
        self.priorities, self.fallback = priorities, fallback
        self.bad = 0

    def _top(self) -> int:
        try:
            return int(self.src.execute("SELECT max(id) FROM msgs").fetchone()[0] or 0)
        except sqlite3.Error:
            try:
                return int(self.src.execute("SELECT seq FROM sqlite_sequence WHERE name='msgs'").fetchone()[0] or 0)
            except sqlite3.Error:
                return 10_000_000

    def chunks(self) -> Iterator[tuple[list[tuple[Any, ...]], int]]:
        """(rows, the id to go on from) per readable range, in id order."""
        top = self._top()
        stack = [(lo, min(lo + _RANGE - 1, top)) for lo in range(self.start, top + 1, _RANGE)][::-1]
        while stack:
            lo, hi = stack.pop()
            try:  # one id alone is looked up, not scanned: a scan would step onto a bad next page
                rows = self.src.execute("SELECT id, prio, topic, boot_id, seq, created, payload, size FROM msgs "
                                        + ("WHERE id=?" if lo == hi else "WHERE id BETWEEN ? AND ? ORDER BY id"),
                                        (lo,) if lo == hi else (lo, hi)).fetchall()
            except sqlite3.Error:
                if lo == hi:
                    self.bad += 1
                    continue
                mid = (lo + hi) // 2
                stack += [(mid + 1, hi), (lo, mid)]
                continue
            good = [(int(p) if p in self.priorities else self.fallback, str(t), str(b), s, 1, c, bytes(pl), int(sz))
                    for i, p, t, b, s, c, pl, sz in rows
                    if isinstance(pl, (bytes, str)) and isinstance(sz, int) and i not in self.delivered]
            if good:
                yield good, hi + 1
