"""An uploaded recording: streamed to disk under a size cap, probed, decoded with a length cap, levelled, kept as WAV.

Every step works on files in pieces, so no upload the limits allow costs the agent more than a few MB of memory.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from drivers.broadcast.api import DecodeError, TtsConfig, decode_capped, level_file

SUFFIXES = (".mp3", ".wav", ".m4a")
REF = re.compile(r"^[0-9a-f]{32}\.wav$")
COPY_CHUNK = 1 << 20
MIN_S = 0.1


class UploadError(ValueError):
    """The message is an i18n key; `detail` says why in one line for the log."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(key)
        self.detail = detail or key


@dataclass(frozen=True)
class Recording:
    ref: str
    path: Path
    duration_s: float


def _copy_capped(src: BinaryIO, dst: Path, max_bytes: int) -> str:
    """Copy the upload to dst in pieces, hashing as it goes; refuses past max_bytes."""
    digest = hashlib.sha256()
    size = 0
    with dst.open("wb") as out:
        while piece := src.read(COPY_CHUNK):
            size += len(piece)
            if size > max_bytes:
                raise UploadError("e_file_size", f"more than {max_bytes} bytes")
            digest.update(piece)
            out.write(piece)
    if size == 0:
        raise UploadError("e_file_bad", "empty file")
    return digest.hexdigest()[:32]


def store_recording(src: BinaryIO, filename: str, dest: Path, tts: TtsConfig, max_s: int,
                    max_bytes: int) -> Recording:
    """Blocking: decode and level the upload into dest/<sha>.wav; refuses what is too big, too long or unreadable."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise UploadError("e_file_type", f"suffix {suffix or 'none'}")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="upload-", dir=dest) as tmp:
        raw = Path(tmp) / f"upload{suffix}"
        digest = _copy_capped(src, raw, max_bytes)
        pcm = Path(tmp) / "decoded.wav"
        try:
            seconds = decode_capped(raw, pcm, tts.sample_rate, max_s)
        except DecodeError as exc:
            raise UploadError("e_file_long" if exc.reason == "too_long" else "e_file_bad", str(exc)) from None
        if seconds < MIN_S:
            raise UploadError("e_file_bad", f"only {seconds:.3f}s of audio")
        out = dest / f"{digest}.wav"
        seconds = level_file(pcm, out, tts.target_dbfs)
    return Recording(out.name, out, seconds)


def find_recording(dest: Path, ref: str) -> Path | None:
    if not REF.match(ref):
        return None
    p = dest / ref
    return p if p.is_file() else None
