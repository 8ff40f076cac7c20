"""What goes on air, read in pieces: chimes in memory, speech straight from its WAV file, never all at once.

The pieces are the samples the whole-array helpers in audio.py give (scale, resample, µ-law), only computed a
stretch at a time, so a 15-minute recording airs in a few MB whatever the zone's output.
"""

from __future__ import annotations

import os
import wave
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from drivers.broadcast.audio import CHUNK_FRAMES, Audio, _lowpass, _mono, resample, scale, ulaw_encode

TAPS = 63  # audio._lowpass's length: a piece needs this many neighbours, half on each side
HALO = (TAPS - 1) // 2


@dataclass(frozen=True)
class Track:
    """Parts one after another at one rate (arrays, or mono 16-bit WAV files at that rate), times a gain."""

    rate: int
    parts: tuple[np.ndarray | Path, ...]
    gain: float = 1.0
    files: tuple[np.ndarray | _WavFile, ...] = field(init=False, compare=False, repr=False)
    sizes: tuple[int, ...] = field(init=False, compare=False)

    @staticmethod
    def of(audio: Audio | Track) -> Track:
        return audio if isinstance(audio, Track) else Track(audio.rate, (audio.samples,))

    def with_gain(self, gain: float) -> Track:
        return replace(self, gain=self.gain * gain)

    def __post_init__(self) -> None:
        files = tuple(_WavFile(p) if isinstance(p, Path) else p for p in self.parts)
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "sizes", tuple(f.frames if isinstance(f, _WavFile) else len(f) for f in files))

    @property
    def frames(self) -> int:
        return sum(self.sizes)

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of the whole, scaled by the gain (soft-limited as audio.scale does)."""
        pieces, offset = [], 0
        for part, n in zip(self.files, self.sizes):
            lo, hi = max(start, offset), min(stop, offset + n)
            if lo < hi:
                pieces.append(part.read(lo - offset, hi - offset) if isinstance(part, _WavFile)
                              else part[lo - offset: hi - offset])
            offset += n
        x = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        return scale(Audio(x, self.rate), self.gain).samples

    def pieces(self, frames: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
        """The whole, scaled, `frames` samples at a time."""
        n = self.frames
        for a in range(0, n, frames):
            yield self.read(a, min(n, a + frames))

    def resampled(self, rate: int, frames: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
        """audio.resample of the whole, scaled, in pieces of about `frames` output samples."""
        n = self.frames
        if self.rate == rate or n == 0:
            yield from self.pieces(frames)
            return
        if n < TAPS:  # too short for the filter's halo; audio.resample's own edge case, all at once
            yield resample(Audio(self.read(0, n), self.rate), rate).samples
            return
        ratio = self.rate / rate
        step = self.rate // rate if self.rate % rate == 0 else 0
        n_out = -(-n // step) if step else int(round(n * rate / self.rate))
        for m0 in range(0, n_out, frames):
            m1 = min(n_out, m0 + frames)
            if step:
                lo, hi = m0 * step, (m1 - 1) * step + 1
            else:
                lo, hi = int(m0 * ratio), min(n, int((m1 - 1) * ratio) + 2)
            x = self._filtered(lo, hi, n, rate)
            if step:
                y = x[::step]
            else:
                y = np.interp(np.arange(m0, m1) * ratio, np.arange(lo, hi), x)
            yield np.clip(np.round(y), -32768, 32767).astype(np.int16)

    def _filtered(self, lo: int, hi: int, n: int, rate: int) -> np.ndarray:
        """Samples [lo, hi) as floats, low-passed as audio.resample does when going down in rate."""
        if rate > self.rate:
            return self.read(lo, hi).astype(np.float64)
        a, b = max(0, lo - HALO), min(n, hi + HALO)  # real neighbours inside, the whole's own edges outside
        if b - a < TAPS:  # np.convolve's "same" is only the input's length when that is at least the filter's
            a = max(0, b - TAPS)
            b = min(n, a + TAPS)
        x = _lowpass(self.read(a, b).astype(np.float64), 0.45 * rate / self.rate, TAPS)
        return x[lo - a: lo - a + (hi - lo)]

    def ulaw(self, rate: int, frames: int = CHUNK_FRAMES) -> Iterator[bytes]:
        """G.711 µ-law of the whole at `rate`, in pieces."""
        for y in self.resampled(rate, frames):
            yield ulaw_encode(y)

    def ulaw_bytes(self, rate: int) -> int:
        """How many µ-law bytes ulaw() gives, known before any is made (an HTTP Content-Length)."""
        n = self.frames
        if self.rate == rate or n == 0:
            return n
        if n < TAPS:
            return len(resample(Audio(np.zeros(n, np.int16), self.rate), rate).samples)
        return -(-n // (self.rate // rate)) if self.rate % rate == 0 else int(round(n * rate / self.rate))


class _WavFile:
    """A WAV's samples by position through one descriptor: pread is safe from every zone's thread at once, and the
    file stays readable if the render cache prunes it while it is on air."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as f, wave.open(f, "rb") as w:
            self.width, self.channels, self.frames = w.getsampwidth(), w.getnchannels(), w.getnframes()
            self.offset = f.tell()  # wave stops at the start of the data chunk
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)

    def read(self, start: int, stop: int) -> np.ndarray:
        block = self.width * self.channels
        raw = os.pread(self.fd, (stop - start) * block, self.offset + start * block)
        return _mono(raw[: len(raw) // block * block], self.width, self.channels, self.path)


def regroup(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The same bytes in blocks of exactly `size` (the last may be shorter)."""
    buf = b""
    for piece in pieces:
        buf += piece
        while len(buf) >= size:
            yield buf[:size]
            buf = buf[size:]
    if buf:
        yield buf
