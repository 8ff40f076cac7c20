"""Atomic JSON state files: a reader (CLI, console, restart) sees the old file or the new one, never half.

Drivers write theirs through `ctx.write_state(name, data)` (StateFiles below): encoded on the loop, written with its
fsync in a thread, a failure logged and counted as `state_write_failed`. The functions are for the core and CLIs.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.logs import KvLogger

FAILED = "state_write_failed"  # the log line and the driver counter of a state file that could not be written


def encode_json(data: Any, *, indent: int | None = 1) -> bytes:
    """The file's bytes: sorted keys, UTF-8 as is, a final newline; raises ValueError/TypeError on a caller's bug."""
    return (json.dumps(data, indent=indent, sort_keys=True, default=str, ensure_ascii=False) + "\n").encode("utf-8")


def write_bytes_atomic(path: Path, blob: bytes) -> None:
    """Write blob via temp file + fsync + rename; raises OSError and leaves no temp file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    """Write data as JSON atomically; raises OSError and leaves no temp file behind.

    Callers decide the policy for a failure (a state file is never worth crashing a driver for: write_json_logged
    and ctx.write_state log `state_write_failed`, the latter also counts it), but the writer itself never hides one.
    """
    write_bytes_atomic(path, encode_json(data, indent=indent))


def _write_logged(path: Path, blob: bytes, log: KvLogger) -> bool:
    try:
        write_bytes_atomic(path, blob)
    except OSError as exc:
        log.warning(FAILED, path=str(path), error=exc.strerror or str(exc))
        return False
    return True


def write_json_logged(path: Path, data: Any, log: KvLogger, *, indent: int | None = 1) -> bool:
    """The one failure policy for state files: an OSError is logged as `state_write_failed`, not raised."""
    return _write_logged(path, encode_json(data, indent=indent), log)


class StateWriter:
    """One state file written off the event loop, in order: a write asked for while another is on disk waits for it,
    and those that pile up meanwhile collapse into the latest (a state file says what is true now, not a history)."""

    def __init__(self, path: Path, log: KvLogger, on_failure: Callable[[], None]) -> None:
        self.path, self.log, self.on_failure = path, log, on_failure
        self._pending: bytes | None = None
        self._waiters: list[asyncio.Future[bool]] = []
        self._task: asyncio.Task[None] | None = None

    def put(self, data: Any, *, indent: int | None = 1) -> asyncio.Future[bool]:
        """Encode data now (a snapshot: the caller may change it at once) and have it written; the future says
        whether it (or a later put that replaced it) reached the disk."""
        loop = asyncio.get_running_loop()
        self._pending = encode_json(data, indent=indent)
        done: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(done)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name=f"state-{self.path.name}")
        return done

    async def _drain(self) -> None:
        while self._pending is not None:
            blob, self._pending = self._pending, None
            waiters, self._waiters = self._waiters, []
            try:
                ok = await asyncio.to_thread(_write_logged, self.path, blob, self.log)
            except BaseException as exc:  # the loop is ending (the thread still finishes its write), or a bug
                for w in (*waiters, *self._waiters):
                    if w.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        w.cancel()
                    else:
                        w.set_exception(exc)
                raise
            if not ok:
                self.on_failure()
            for w in waiters:
                if not w.done():
                    w.set_result(ok)


class StateFiles:
    """A driver's state files under its data dir (what `ctx.write_state` does), one StateWriter per file."""

    def __init__(self, data_dir: Path, log: KvLogger, count: Callable[[str], None]) -> None:
        self.data_dir, self.log, self.count = data_dir, log, count
        self._writers: dict[Path, StateWriter] = {}

    def write(self, name: str | Path, data: Any) -> asyncio.Future[bool]:
        """data as JSON at data_dir/name (or at name when absolute); see StateWriter.put."""
        path = self.data_dir / name
        writer = self._writers.get(path)
        if writer is None:
            writer = self._writers[path] = StateWriter(path, self.log, lambda: self.count(FAILED))
        return writer.put(data)


def read_json_bounded(path: Path, max_bytes: int) -> tuple[Any | None, str | None]:
    """(content, None); (None, None) when the file is not there yet (a first start); (None, why) when it is
    too big, unreadable or not JSON — the caller starts empty and logs the reason."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    if size > max_bytes:
        return None, f"larger than {max_bytes} bytes"
    doc = read_json(path)
    return (doc, None) if doc is not None else (None, "unreadable or not JSON")


def read_json(path: Path) -> Any | None:
    """The file's content, or None when it is missing or unreadable (the caller says what that means)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
