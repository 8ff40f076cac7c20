"""PCM helpers in numpy: WAV I/O, resampling, loudness levelling, G.711 µ-law, the chime."""

from __future__ import annotations

import os
import tempfile
import wave
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

BLOCK_S = 0.4
CHUNK_FRAMES = 1 << 16  # samples per piece when a file is streamed: ~4 s at 16 kHz, ~2 MB as float64


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit PCM at `rate` Hz."""

    samples: np.ndarray
    rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def pcm(self) -> bytes:
        return self.samples.astype("<i2").tobytes()


def _mono(raw: bytes, width: int, channels: int, where: object) -> np.ndarray:
    """8/16-bit PCM frames mixed down to mono int16."""
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    elif width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    else:
        raise ValueError(f"{where}: {8 * width}-bit WAV not supported (use 16-bit PCM)")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return np.clip(data, -32768, 32767).astype(np.int16)


def read_wav(path: Path) -> Audio:
    """Any 8/16-bit PCM WAV, mixed down to mono."""
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    return Audio(_mono(raw, width, channels, path), rate)


def wav_seconds(path: Path) -> float:
    """A WAV's length from its header, without reading its samples."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def wav_rate(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getframerate()


def read_wav_chunks(path: Path, frames: int = CHUNK_FRAMES) -> Iterator[Audio]:
    """The same samples as read_wav, `frames` at a time, so a long file never sits in memory whole."""
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        while raw := w.readframes(frames):
            yield Audio(_mono(raw, width, channels, path), rate)


@contextmanager
def wav_writer(path: Path, rate: int) -> Iterator[wave.Wave_write]:
    """A mono 16-bit WAV written in pieces and renamed into place only when whole."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            yield w
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_wav(path: Path, audio: Audio) -> None:
    """Write atomically so a reader never sees half a file; two writers of one path never share a temp file."""
    with wav_writer(path, audio.rate) as w:
        w.writeframes(audio.pcm())


def _lowpass(x: np.ndarray, cutoff: float, taps: int = 63) -> np.ndarray:
    """Windowed-sinc FIR; cutoff as a fraction of the sample rate."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff * n) * np.hamming(taps)
    return np.convolve(x, h / h.sum(), mode="same")


def resample(audio: Audio, rate: int) -> Audio:
    if audio.rate == rate or len(audio.samples) == 0:
        return Audio(audio.samples, rate)
    x = audio.samples.astype(np.float64)
    if rate < audio.rate:
        x = _lowpass(x, 0.45 * rate / audio.rate)
    if audio.rate % rate == 0:
        y = x[:: audio.rate // rate]
    else:
        n_out = int(round(len(x) * rate / audio.rate))
        y = np.interp(np.arange(n_out) * (audio.rate / rate), np.arange(len(x)), x)
    return Audio(np.clip(np.round(y), -32768, 32767).astype(np.int16), rate)


def _block_energies(x: np.ndarray, block: int) -> np.ndarray:
    n = len(x) // block
    return np.mean(x[: n * block].reshape(n, block) ** 2, axis=1)


def _gate(blocks: np.ndarray) -> float:
    blocks = blocks[blocks > 10 ** (-70 / 10)]
    if len(blocks) == 0:
        return -120.0
    rel = np.mean(blocks) * 10 ** (-10 / 10)
    kept = blocks[blocks > rel]
    return float(10 * np.log10(np.mean(kept if len(kept) else blocks)))


def gated_rms_dbfs(audio: Audio) -> float:
    """Loudness of speech without its pauses: 400 ms blocks, absolute and relative gates as in BS.1770."""
    x = audio.samples.astype(np.float64) / 32768.0
    block = max(1, int(BLOCK_S * audio.rate))
    if len(x) < block:
        return _gate(np.array([np.mean(x**2)]) if len(x) else np.array([0.0]))
    return _gate(_block_energies(x, block))


def gated_rms_dbfs_chunks(chunks: Iterable[Audio]) -> float:
    """gated_rms_dbfs of the pieces joined, keeping only one piece and the block energies in memory."""
    energies: list[np.ndarray] = []
    rest = np.zeros(0)
    block = 1
    for a in chunks:
        block = max(1, int(BLOCK_S * a.rate))
        x = np.concatenate([rest, a.samples.astype(np.float64) / 32768.0])
        energies.append(_block_energies(x, block))
        rest = x[len(x) // block * block:]
    blocks = np.concatenate(energies) if energies else np.zeros(0)
    if len(blocks) == 0:
        return _gate(np.array([np.mean(rest**2)]) if len(rest) else np.array([0.0]))
    return _gate(blocks)


def level(audio: Audio, target_dbfs: float) -> Audio:
    """Bring speech to target loudness; peaks above -1 dBFS are softly limited instead of clipped."""
    current = gated_rms_dbfs(audio)
    if current <= -100:
        return audio
    gain = 10 ** ((target_dbfs - current) / 20)
    return scale(audio, gain)


def level_file(src: Path, dst: Path, target_dbfs: float) -> float:
    """level() of a WAV file into dst in two passes over the file (measure, then scale); returns its seconds."""
    current = gated_rms_dbfs_chunks(read_wav_chunks(src))
    gain = 1.0 if current <= -100 else 10 ** ((target_dbfs - current) / 20)
    with wave.open(str(src), "rb") as w:
        rate = w.getframerate()
    frames = 0
    with wav_writer(dst, rate) as out:
        for a in read_wav_chunks(src):
            out.writeframesraw(scale(a, gain).pcm())
            frames += len(a.samples)
    return frames / rate


def scale(audio: Audio, gain: float) -> Audio:
    if gain == 1.0:
        return audio
    x = audio.samples.astype(np.float64) / 32768.0 * gain
    knee = 0.89
    over = np.abs(x) > knee
    if over.any():
        x[over] = np.sign(x[over]) * (knee + (1 - knee) * np.tanh((np.abs(x[over]) - knee) / (1 - knee)))
    return Audio(np.round(x * 32767).astype(np.int16), audio.rate)


def silence(seconds: float, rate: int) -> Audio:
    return Audio(np.zeros(int(seconds * rate), dtype=np.int16), rate)


def concat(parts: list[Audio]) -> Audio:
    rate = parts[0].rate
    return Audio(np.concatenate([resample(p, rate).samples for p in parts]), rate)


def chime(rate: int) -> Audio:
    """A two-tone "ding-dong" (E5 then C5 with decaying overtones) so listeners know a bulletin follows."""
    out = []
    for freq in (659.25, 523.25):
        t = np.arange(int(0.7 * rate)) / rate
        env = np.exp(-t * 4.0) * np.minimum(1.0, t / 0.005)
        tone = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t) + 0.1 * np.sin(6 * np.pi * freq * t)
        out.append(tone * env)
    x = np.concatenate(out)
    return Audio(np.round(x / np.max(np.abs(x)) * 0.5 * 32767).astype(np.int16), rate)


_BIAS = 0x84


def ulaw_encode(samples: np.ndarray) -> bytes:
    """G.711 µ-law of 16-bit samples (the 14-bit reference algorithm, bit-exact with ITU G.191)."""
    v = samples.astype(np.int32) >> 2
    negative = v < 0
    mag = np.minimum(np.where(negative, -v, v), 8159) + 33
    segment = np.maximum(np.floor(np.log2(mag)).astype(np.int32) - 5, 0)
    mantissa = (mag >> (segment + 1)) & 0x0F
    code = np.where(segment > 7, 0x7F, (segment << 4) | mantissa)
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mag = (((u & 0x0F) << 3) + _BIAS) << exponent
    mag -= _BIAS
    return np.where(u & 0x80, -mag, mag).astype(np.int16)
