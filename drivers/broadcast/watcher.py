"""The watched directory of bulletin YAML files: new, changed and removed files since the last scan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from agent.audit import audit_event
from drivers.broadcast.bulletin import Bulletin, BulletinError, load_bulletin_file
from drivers.broadcast.scheduler import Scheduler

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


async def watch_dir(bdir: BulletinDir, sched: Scheduler) -> None:
    """Files in the folder are bulletins: added, changed and removed files go through the scheduler's store."""
    ctx, log = sched.ctx, sched.log
    try:
        bdir.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("bulletin_dir_unusable", dir=str(bdir.path), error=exc.strerror)
        ctx.health("degraded", "bulletin_dir {path}: {error}", path=str(bdir.path), error=exc.strerror)
    while True:
        result = await sched.airing_audio.in_thread(bdir.scan)
        for path, error in result.invalid:
            sched.file_errors[str(path)] = error
            ctx.count("bad_bulletin")
            log.warning("bulletin_file_invalid", file=str(path), error=error)
        for path, b in result.loaded:
            source = f"file:{path}"
            try:
                sched.check_zones(b, str(path))
            except BulletinError as exc:
                sched.file_errors[str(path)] = str(exc)
                ctx.count("bad_bulletin")
                log.warning("bulletin_file_invalid", file=str(path), error=str(exc))
                continue
            sched.file_errors.pop(str(path), None)
            stored = sched.store.get(b.id)
            if stored and stored.bulletin == b and stored.source == source:
                continue
            log.info("bulletin_file_loaded", file=str(path), bulletin=b.id)
            sched.accept(b, source)
            await ctx.emit(audit_event(source, "bulletin_update" if stored else "bulletin_create", b.id))
        for path in result.removed:
            sched.file_errors.pop(str(path), None)
            for s in sched.store.all():
                if s.source == f"file:{path}":
                    sched.cancel(s.bulletin.id, f"file {path} removed")
                    await ctx.emit(audit_event(s.source, "bulletin_cancel", s.bulletin.id, detail="file removed"))
        if result.invalid or result.removed:
            sched.write_state()
        await asyncio.sleep(1.0)
