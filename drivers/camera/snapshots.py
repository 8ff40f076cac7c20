"""JPEG encoding of event pictures and one camera's snapshot store (bounded by the shared Storage)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np

from drivers.camera.storage import Storage

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PENDING = ".pending"


def encode_jpeg(frame: np.ndarray, width: int, quality: int) -> bytes:
    """Downscale (never upscale) to width and encode; small pictures are what a poor uplink can carry."""
    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def reencode_jpeg(jpeg: bytes, width: int, quality: int) -> bytes:
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError("not a JPEG")
    return encode_jpeg(frame, width, quality)


class SnapshotStore:
    """One camera's snapshots on disk; room is made by the shared Storage. Unsent ones are marked pending."""

    def __init__(self, root: Path, storage: Storage) -> None:
        self.root = root
        self.storage = storage
        self.root.mkdir(parents=True, exist_ok=True)

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("*.jpg"), key=lambda p: p.name)

    def path_for(self, event_id: str, pending: bool) -> Path:
        if not _SAFE_ID.match(event_id):
            raise ValueError(f"bad event id {event_id!r}")
        return self.root / f"{time.time_ns():020d}_{event_id}{PENDING if pending else ''}.jpg"

    def put(self, event_id: str, jpeg: bytes, pending: bool = False) -> Path | None:
        """Write atomically if the budget (and the disk) has room; None when it was not kept."""
        path = self.path_for(event_id, pending)
        if not self.storage.make_room(len(jpeg)):
            return None
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_bytes(jpeg)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return None
        return path

    def pending(self) -> list[tuple[str, Path]]:
        """(event_id, path) of snapshots not yet sent, oldest first."""
        out = []
        for p in self._files():
            stem = p.stem
            if stem.endswith(PENDING):
                out.append((stem[: -len(PENDING)].split("_", 1)[1], p))
        return out

    def mark_sent(self, path: Path) -> None:
        if path.stem.endswith(PENDING):
            with contextlib.suppress(FileNotFoundError):  # trimmed meanwhile
                path.rename(path.with_name(path.stem[: -len(PENDING)] + ".jpg"))

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files())
