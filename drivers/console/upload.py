"""An uploaded recording: type and size checked, decoded by ffmpeg (argv, no shell), levelled, kept as WAV."""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drivers.broadcast.audio import level, write_wav
from drivers.broadcast.config import TtsConfig
from drivers.broadcast.tts import TtsError, decode_file

SUFFIXES = (".mp3", ".wav", ".m4a")
REF = re.compile(r"^[0-9a-f]{32}\.wav$")


class UploadError(ValueError):
    """The message is an i18n key (with its format arguments in `args[1:]`)."""


@dataclass(frozen=True)
class Recording:
    ref: str
    path: Path
    duration_s: float


def store_recording(data: bytes, filename: str, dest: Path, tts: TtsConfig, max_s: int) -> Recording:
    """Blocking: decode and level the upload into dest/<sha>.wav; refuses what ffmpeg cannot read."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise UploadError("e_file_type")
    digest = hashlib.sha256(data).hexdigest()[:32]
    out = dest / f"{digest}.wav"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="upload-", dir=dest) as tmp:
        src = Path(tmp) / f"upload{suffix}"
        src.write_bytes(data)
        try:
            audio = decode_file(src, tts.sample_rate)
        except TtsError:
            raise UploadError("e_file_bad") from None
    if audio.duration_s < 0.1:
        raise UploadError("e_file_bad")
    if audio.duration_s > max_s:
        raise UploadError("e_file_long")
    write_wav(out, level(audio, tts.target_dbfs))
    return Recording(out.name, out, audio.duration_s)


def find_recording(dest: Path, ref: str) -> Path | None:
    if not REF.match(ref):
        return None
    p = dest / ref
    return p if p.is_file() else None
