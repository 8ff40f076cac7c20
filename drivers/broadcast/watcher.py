"""The watched directory of bulletin YAML files: new, changed and removed files since the last scan."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drivers.broadcast.bulletin import Bulletin, BulletinError, load_bulletin_file

SUFFIXES = (".yaml", ".yml")


@dataclass
class ScanResult:
    loaded: list[tuple[Path, Bulletin]] = field(default_factory=list)
    invalid: list[tuple[Path, str]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


class BulletinDir:
    """Polls by (mtime, size): no inotify needed, and a half-written file is simply read again when it changes."""

    def __init__(self, path: Path, max_chars: int) -> None:
        self.path = path
        self.max_chars = max_chars
        self.seen: dict[Path, tuple[int, int]] = {}

    def scan(self) -> ScanResult:
        out = ScanResult()
        current: dict[Path, tuple[int, int]] = {}
        try:
            entries = list(self.path.iterdir())
        except OSError as exc:
            out.invalid.append((self.path, f"cannot read directory: {exc.strerror}"))
            return out
        for p in entries:
            if p.name.startswith(".") or p.suffix.lower() not in SUFFIXES:
                continue
            try:
                st = p.stat()
            except OSError:
                continue
            sig = (st.st_mtime_ns, st.st_size)
            current[p] = sig
            if self.seen.get(p) == sig:
                continue
            try:
                out.loaded.append((p, load_bulletin_file(p, self.max_chars)))
            except BulletinError as exc:
                out.invalid.append((p, str(exc)))
        out.removed = [p for p in self.seen if p not in current]
        self.seen = current
        return out
