"""Audio files from outside into mono 16-bit WAV on disk: probed first, then decoded by ffmpeg with a hard cap.

A container's claimed duration can lie (a FLAC whose header says 5 s holds 3 h), so the probe only refuses early;
the decode itself stops at the cap and the length that counts is the one decoded. Nothing is held in memory here.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path

from agent.children import ChildTimeout, run_child_sync
from drivers.broadcast.audio import wav_seconds

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
# demuxers for what phones, recorders and browsers make; never playlists or concat lists, which open other files
FORMATS = "mp3,wav,mov,aac,flac,ogg,matroska"
MAX_CHANNELS = 8
MAX_RATE = 192000
TIMEOUT_S = 120.0


class DecodeError(Exception):
    """`reason` is "unreadable" or "too_long"; the message is one line for the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Probe:
    """What the container says about itself: a hint, never trusted for limits on its own."""

    format: str
    duration_s: float | None
    rate: int
    channels: int


def _run(argv: list[str], what: str) -> bytes:
    """Run ffmpeg/ffprobe with an argv list (never a shell), killed past TIMEOUT_S; its last stderr line becomes the
    error."""
    try:
        res = run_child_sync(argv, TIMEOUT_S)
    except ChildTimeout:
        raise DecodeError("unreadable", f"{what}: {argv[0]} took longer than {TIMEOUT_S:.0f}s") from None
    except FileNotFoundError:
        raise DecodeError("unreadable", f"{what}: {argv[0]} is not installed") from None
    if res.code != 0:
        raise DecodeError("unreadable", f"{what}: {res.last_words()}")
    return res.stdout


def probe(src: Path) -> Probe:
    """The first audio stream's container facts; refuses what is no audio or has absurd rates or channel counts."""
    out = _run([FFPROBE, "-v", "error", "-protocol_whitelist", "file", "-format_whitelist", FORMATS,
                "-select_streams", "a:0", "-show_entries", "format=format_name,duration:stream=sample_rate,channels",
                "-of", "json", str(src)], f"probe {src.name}")
    try:
        info = json.loads(out)
        stream = info["streams"][0]
        rate, channels = int(stream["sample_rate"]), int(stream["channels"])
        fmt = str(info["format"]["format_name"])
        dur = info["format"].get("duration")
        duration = float(dur) if dur not in (None, "N/A") else None
    except (ValueError, KeyError, IndexError, TypeError):
        raise DecodeError("unreadable", f"probe {src.name}: no audio stream") from None
    if not 0 < rate <= MAX_RATE or not 0 < channels <= MAX_CHANNELS:
        raise DecodeError("unreadable", f"probe {src.name}: {channels} channels at {rate} Hz")
    return Probe(fmt, duration, rate, channels)


def decode_capped(src: Path, dst: Path, rate: int, max_s: float) -> float:
    """Decode src into dst (mono s16 WAV at `rate`); refuses, without decoding further, anything over max_s."""
    info = probe(src)
    if info.duration_s is not None and info.duration_s > max_s:
        raise DecodeError("too_long", f"decode {src.name}: says {info.duration_s:.0f}s, limit {max_s:.0f}s")
    cap_s = max_s + 1.0  # one second past the limit proves the file is too long without decoding the rest
    cap_bytes = int(cap_s * rate * 2) + 4096
    _run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file",
          "-format_whitelist", FORMATS, "-i", str(src), "-map", "0:a:0", "-map_metadata", "-1", "-ac", "1",
          "-ar", str(rate), "-c:a", "pcm_s16le", "-t", f"{cap_s:.3f}", "-fs", str(cap_bytes), "-f", "wav", "-y",
          str(dst)],
         f"decode {src.name}")
    try:
        seconds = wav_seconds(dst)
    except (OSError, EOFError, wave.Error) as exc:
        raise DecodeError("unreadable", f"decode {src.name}: {exc}") from None
    if seconds > max_s:
        raise DecodeError("too_long", f"decode {src.name}: more than {max_s:.0f}s decoded")
    return seconds
