"""The cameras family's face: each camera's live state (online, problem, storage) and the pictures of its events.

Nothing here imports OpenCV: readers get paths to JPEG files the driver already wrote.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from agent.statefile import read_json

SECTION = "cameras"  # the supervisor gives the driver <data_dir>/<section>
STATE_FILE = "state.json"
SNAPSHOTS = "snapshots"  # <SNAPSHOTS>/<camera>/<time_ns>_<event_id>[.pending].jpg, as SnapshotStore names them
_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def live_state(data_root: Path) -> dict[str, Any] | None:
    """What the driver last wrote: {"ts", "cameras": {name: {"online", "problem", ...}}, "storage"}; None before."""
    doc = read_json(data_root / SECTION / STATE_FILE)
    return doc if isinstance(doc, dict) else None


def camera_of(data: Mapping[str, Any]) -> str | None:
    """The camera one of this family's events is about."""
    name = data.get("camera")
    return name if isinstance(name, str) else None


def _snapshots(data_root: Path, camera: str) -> list[Path]:
    if not _SAFE.match(camera):
        return []
    d = data_root / SECTION / SNAPSHOTS / camera
    return sorted(d.glob("*.jpg"), key=lambda p: p.name) if d.is_dir() else []


def latest_snapshot(data_root: Path, camera: str) -> Path | None:
    """The camera's newest picture on disk; None for an unknown or unsafe name."""
    files = _snapshots(data_root, camera)
    return files[-1] if files else None


def event_snapshot(data_root: Path, camera: str, event_id: str) -> Path | None:
    """The picture of one event (sent or still pending); None when there is none or a name is unsafe."""
    if not _SAFE.match(event_id):
        return None
    found = [p for p in _snapshots(data_root, camera) if p.stem.split("_", 1)[-1].split(".")[0] == event_id]
    return found[-1] if found else None
