"""Atomic JSON state files: a reader (CLI, console, restart) sees the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from agent.logs import KvLogger


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    """Write data as JSON via temp file + fsync + rename; raises OSError and leaves no temp file behind.

    Callers decide the policy for a failure (a state file is never worth crashing a driver for:
    they log `state_write_failed` and count it), but the writer itself never hides one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent, sort_keys=True, default=str, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_logged(path: Path, data: Any, log: KvLogger, *, indent: int | None = 1) -> bool:
    """The one failure policy for state files: an OSError is logged as `state_write_failed`, not raised."""
    try:
        write_json(path, data, indent=indent)
    except OSError as exc:
        log.warning("state_write_failed", path=str(path), error=exc.strerror or str(exc))
        return False
    return True


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
