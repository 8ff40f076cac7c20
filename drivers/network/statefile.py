"""The JSON state file the driver keeps in its data dir for `commune-agent links` and restarts."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from drivers.network.config import NetworkConfig


def write_json(path: Path, data: Any) -> None:
    """Atomic replace: a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
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


def read_json(path: Path) -> Any | None:
    """The file's content, or None when it is missing or unreadable (the caller says what that means)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def state_path_of(cfg: NetworkConfig, data_dir: Path) -> Path:
    """Where the driver keeps its live link state (shared with the CLI)."""
    return cfg.state_file if cfg.state_file.is_absolute() else data_dir / cfg.state_file
