"""One bound for everything the cameras keep on disk: clips, snapshots and the recording rings.

Oldest clips and snapshots go first when the byte budget is reached or when they pass max age; below
the free-disk floor recording pauses (and says so) until space is back. Enforced on every write and
every `check_every_s`, with headroom for what the rings write between two checks.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from agent.logs import KvLogger

if TYPE_CHECKING:  # only types: the worker process never imports pydantic (see plain.py)
    from drivers.camera.config import StorageConfig

RING_HEADROOM_S = 3.0  # room kept for what every ring writes in this long (checks can run late on a busy box)
KEPT = {".jpg", ".mp4"}  # what may be deleted to make room; a clip's .json goes with its .mp4


def _walk(root: Path) -> Iterator[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                yield from _walk(Path(e.path))
            elif e.is_file(follow_symlinks=False):
                yield e
        except FileNotFoundError:
            continue


class Storage:
    """Shared by every camera of the driver: `root` is {data_dir}/cameras."""

    def __init__(self, root: Path, cfg: StorageConfig, log: KvLogger) -> None:
        self.root, self.cfg, self.log = root, cfg, log
        self.root.mkdir(parents=True, exist_ok=True)
        self.paused: str | None = None
        self.paused_params: dict[str, int | str] = {}  # the same reason as fields, for a translated health line
        self.deleted = 0
        self.last_total = 0
        self.growth = 0  # bytes the rings wrote between the last two checks, kept free for the next
        self.ring_rates: dict[str, float] = {}  # camera -> bytes/s its recording ring writes
        self.reserved = 0  # bytes promised to writes under way (clip remuxes), not on disk yet

    def _files(self) -> list[tuple[str, Path, int, float]]:
        out = []
        for e in _walk(self.root):
            try:
                st = e.stat()
            except FileNotFoundError:
                continue
            out.append((e.name, Path(e.path), st.st_size, st.st_mtime))
        return out

    def total_bytes(self) -> int:
        return sum(size for _, _, size, _ in self._files())

    def _deletable(self) -> list[tuple[str, Path, int, float]]:
        """Clips and snapshots, oldest first (their names start with the time they were written)."""
        files = [f for f in self._files() if Path(f[0]).suffix in KEPT and not f[0].startswith(".")]
        return sorted(files, key=lambda f: (f[0][:20], f[3]))

    def _delete(self, path: Path) -> int:
        freed = 0
        for p in (path, path.with_suffix(".json")) if path.suffix == ".mp4" else (path,):
            try:
                freed += p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                continue
        self.deleted += 1
        return freed

    def headroom(self) -> int:
        rings = int(sum(self.ring_rates.values()) * RING_HEADROOM_S)
        return min(max(self.growth, rings), self.cfg.budget_bytes // 2)

    def make_room(self, nbytes: int) -> bool:
        """Delete oldest clips/snapshots until nbytes more fit in the budget; False if they never can."""
        if self.paused is not None:
            return False
        total = self.total_bytes() + self.reserved
        limit = self.cfg.budget_bytes - self.headroom()
        for _, path, _, _ in self._deletable():
            if total + nbytes <= limit:
                break
            total -= self._delete(path)
        return total + nbytes <= limit

    def reserve(self, nbytes: int) -> bool:
        """make_room for a write that takes a while: the room stays promised until release()."""
        if not self.make_room(nbytes):
            return False
        self.reserved += nbytes
        return True

    def release(self, nbytes: int) -> None:
        self.reserved = max(0, self.reserved - nbytes)

    def note_written(self) -> None:
        self.last_total = self.total_bytes()

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def enforce(self, now: float | None = None) -> str | None:
        """Age and budget trim, then the free-disk floor; returns "paused"/"resumed" when that flips."""
        now = time.time() if now is None else now
        max_age = self.cfg.max_age_days * 86400
        for _, path, _, mtime in self._deletable():
            if now - mtime > max_age:
                self._delete(path)
        total = self.total_bytes() + self.reserved
        self.growth = min(max(0, 2 * (total - self.last_total)), self.cfg.budget_bytes // 4)
        for _, path, _, _ in self._deletable():
            if total <= self.cfg.budget_bytes - self.headroom():
                break
            total -= self._delete(path)
        self.last_total = total
        free = self.free_bytes()
        if self.paused is None and free < self.cfg.min_free_bytes:
            self.paused = (f"free disk {free // 1024} KiB under the floor of {self.cfg.min_free_bytes // 1024} KiB "
                           f"(storage.min_free_bytes) on {self.root}")
            self.paused_params = {"free_kib": free // 1024, "floor_kib": self.cfg.min_free_bytes // 1024,
                                  "root": str(self.root)}
            self.log.warning("recording_paused", free_bytes=free, min_free_bytes=self.cfg.min_free_bytes)
            return "paused"
        if self.paused is not None and free >= self.cfg.min_free_bytes + self.cfg.min_free_bytes // 10:
            self.paused = None
            self.log.info("recording_resumed", free_bytes=free)
            return "resumed"
        return None
