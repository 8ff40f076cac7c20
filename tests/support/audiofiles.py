"""Hostile and long audio files made with the real ffmpeg, for the upload and decode tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def silent_flac(path: Path, seconds: float, rate: int = 8000) -> Path:
    """Hours of silence compress to almost nothing: 3 h is about 2 MB."""
    ffmpeg("-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono", "-t", str(seconds), "-c:a", "flac", str(path))
    return path


def lying_flac(src: Path, claim_s: float) -> Path:
    """The same FLAC with STREAMINFO's total-samples field rewritten: ffprobe believes claim_s, decoding does not."""
    data = bytearray(src.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO is the first metadata block
    field = slice(8 + 10, 8 + 18)  # 20 bits rate, 3 channels, 5 bits per sample, 36 total samples
    bits = int.from_bytes(data[field], "big")
    rate = bits >> 44
    bits = (bits & ~((1 << 36) - 1)) | int(claim_s * rate)
    data[field] = bits.to_bytes(8, "big")
    out = src.with_name("liar-" + src.name)
    out.write_bytes(bytes(data))
    return out


def tone_mp3(path: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=300:duration={seconds}:sample_rate=16000", "-ac", "1",
           "-b:a", "16k", str(path))
    return path


def speech_like_wav(path: Path, rate: int = 22050) -> Path:
    """Bursts of two tones with pauses and loud peaks, stereo at an odd rate: exercises gate, limiter and mixdown."""
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=220:sample_rate={rate}:duration=7",
           "-f", "lavfi", "-i", f"sine=frequency=1375:sample_rate={rate}:duration=7",
           "-filter_complex", "[0][1]amerge=inputs=2,volume='if(lt(mod(t,1.5),0.9),0.9*(0.3+mod(t,1.5)),0)':eval=frame",
           "-c:a", "pcm_s16le", str(path))
    return path
