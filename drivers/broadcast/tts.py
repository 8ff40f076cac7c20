"""Text to speech: gTTS (cached on disk, keyed by text and voice) with an offline espeak-ng fallback, levelled alike."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent.children import ChildTimeout, run_child_sync
from drivers.broadcast.audio import Audio, level, level_file, read_wav, resample, wav_seconds, write_wav
from drivers.broadcast.config import TtsConfig
from drivers.broadcast.decode import DecodeError, decode_capped
from drivers.broadcast.lexicon import Lexicon
from drivers.broadcast.normalize_vi import normalize

ESPEAK = "espeak-ng"
FFMPEG = "ffmpeg"
MAX_FILE_S = 7200  # longest recorded announcement rendered (the console's max_recording_s is at most this)


class TtsError(Exception):
    """No engine could speak this text; the message says why for each engine."""


@dataclass(frozen=True)
class Rendering:
    """A finished, levelled WAV ready to air."""

    path: Path
    engine: str
    duration_s: float
    seconds_taken: float


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def _run(argv: list[str], stdin: bytes | None, timeout: float, what: str) -> None:
    """Run a helper program with an argv list (never a shell), killed past its timeout; its stderr becomes the error."""
    try:
        res = run_child_sync(argv, timeout, stdin, capture_stdout=False)
    except ChildTimeout:
        raise TtsError(f"{what}: {argv[0]} took longer than {timeout:.0f}s") from None
    except FileNotFoundError:
        raise TtsError(f"{what}: {argv[0]} is not installed") from None
    if res.code != 0:
        raise TtsError(f"{what}: {res.last_words()}")


def decode_file(src: Path, rate: int) -> Audio:
    """Any audio file ffmpeg reads, as mono PCM at `rate`."""
    with tempfile.TemporaryDirectory(prefix="bc-dec-") as tmp:
        out = Path(tmp) / "out.wav"
        _run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(src), "-ac", "1",
              "-ar", str(rate), "-acodec", "pcm_s16le", "-f", "wav", str(out)], None, 120, f"decode {src.name}")
        return read_wav(out)


def _default_gtts(text: str, cfg: TtsConfig, dest: Path) -> None:
    from gtts import gTTS

    gTTS(text=text, lang=cfg.gtts_lang, tld=cfg.gtts_tld, timeout=cfg.gtts_timeout_s).save(str(dest))


GttsFetch = Callable[[str, TtsConfig, Path], None]


class Synthesizer:
    """Renders bulletins into levelled WAVs under `cache_dir`; safe to call from worker threads."""

    def __init__(self, cfg: TtsConfig, cache_dir: Path, fetch_gtts: GttsFetch = _default_gtts,
                 lexicon: Lexicon | None = None) -> None:
        self.cfg = cfg
        self.lexicon = lexicon
        self.dir = cache_dir
        self.fetch_gtts = fetch_gtts
        for sub in ("gtts", "render"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    def gtts_cache_path(self, spoken: str) -> Path:
        """Where gTTS's MP3 for this spoken text and voice lives; a hit never touches the network."""
        return self.dir / "gtts" / f"{_key(self.cfg.gtts_lang, self.cfg.gtts_tld, spoken)}.mp3"

    def _render_path(self, engine: str, voice: str, spoken: str) -> Path:
        key = _key(engine, voice, spoken, str(self.cfg.sample_rate), f"{self.cfg.target_dbfs:.1f}")
        return self.dir / "render" / f"{engine}-{key}.wav"

    def engines_for(self, wanted: str) -> list[str]:
        if wanted == "espeak":
            return ["espeak"]
        if wanted == "gtts":
            return ["gtts"] + (["espeak"] if "espeak" in self.cfg.engines else [])
        return list(self.cfg.engines)

    def spoken_text(self, text: str) -> str:
        """What both engines are given: the text normalised, the official's lexicon first."""
        if len(text) > self.cfg.max_chars:
            raise TtsError(f"text too long ({len(text)} characters, limit {self.cfg.max_chars})")
        spoken = normalize(text, self.lexicon.entries if self.lexicon else None, self.cfg.region)
        if not any(ch.isalnum() for ch in spoken):
            raise TtsError("text has nothing to speak")
        return spoken

    def render_text(self, text: str, wanted: str = "auto", voice: str | None = None) -> Rendering:
        """Try each engine in order; the first that works gives the rendering. Blocking."""
        t0 = time.monotonic()
        spoken = self.spoken_text(text)
        errors = []
        for engine in self.engines_for(wanted):
            v = voice or (self.cfg.espeak_voice if engine == "espeak" else self.cfg.gtts_tld)
            out = self._render_path(engine, v, spoken)
            if out.exists():
                os.utime(out)
                return Rendering(out, engine, read_wav(out).duration_s, time.monotonic() - t0)
            try:
                audio = self._gtts(spoken) if engine == "gtts" else self._espeak(spoken, v)
            except TtsError as exc:
                errors.append(f"{engine}: {exc}")
                continue
            audio = level(resample(audio, self.cfg.sample_rate), self.cfg.target_dbfs)
            write_wav(out, audio)
            return Rendering(out, engine, audio.duration_s, time.monotonic() - t0)
        raise TtsError("; ".join(errors) or "no engine configured")

    def render_file(self, src: Path) -> Rendering:
        """A recorded announcement: decoded, resampled and levelled like speech."""
        t0 = time.monotonic()
        try:
            with src.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()[:32]
        except OSError as exc:
            raise TtsError(f"audio_file {src}: {exc.strerror}") from None
        out = self._render_path("file", "", digest)
        if not out.exists():
            # streamed through files in pieces: a long recording never sits in the agent's memory whole
            with tempfile.TemporaryDirectory(prefix="bc-dec-") as tmp:
                pcm = Path(tmp) / "decoded.wav"
                try:
                    decode_capped(src, pcm, self.cfg.sample_rate, MAX_FILE_S)
                except DecodeError as exc:
                    raise TtsError(str(exc)) from None
                level_file(pcm, out, self.cfg.target_dbfs)
        return Rendering(out, "file", wav_seconds(out), time.monotonic() - t0)

    def _gtts(self, spoken: str) -> Audio:
        mp3 = self.gtts_cache_path(spoken)
        if not mp3.exists():
            fd, name = tempfile.mkstemp(prefix=f".{mp3.name}.", suffix=".part", dir=mp3.parent)
            os.close(fd)
            part = Path(name)  # its own temp file: two renders of one text may run at once
            try:
                self.fetch_gtts(spoken, self.cfg, part)
            except Exception as exc:  # gTTSError, requests errors, anything the network does
                part.unlink(missing_ok=True)
                raise TtsError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
            part.replace(mp3)
        return decode_file(mp3, self.cfg.sample_rate)

    def _espeak(self, spoken: str, voice: str) -> Audio:
        with tempfile.TemporaryDirectory(prefix="bc-espeak-") as tmp:
            out = Path(tmp) / "speech.wav"
            timeout = 60 + len(spoken) / 50
            _run([ESPEAK, "-v", voice, "-s", str(self.cfg.espeak_speed_wpm), "-w", str(out), "--stdin"],
                 spoken.encode("utf-8"), timeout, "espeak-ng")
            return read_wav(out)

    def prune(self) -> int:
        """Drop the least recently used renderings once the cache passes its size limit."""
        files = [p for sub in ("gtts", "render") for p in (self.dir / sub).iterdir() if p.is_file()]
        files.sort(key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        limit = self.cfg.cache_max_mb * 1024 * 1024
        removed = 0
        for p in files:
            if total <= limit:
                break
            total -= p.stat().st_size
            p.unlink(missing_ok=True)
            removed += 1
        return removed
