"""The audio of airings: bulletins rendered to levelled WAVs off the event loop (tts.py speaks and caches),
and the chimes around them."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from drivers.broadcast.audio import Audio, chime, read_wav, resample, silence, wav_rate
from drivers.broadcast.bulletin import Bulletin
from drivers.broadcast.config import BroadcastConfig
from drivers.broadcast.lexicon import FILE as LEXICON_FILE
from drivers.broadcast.lexicon import Lexicon
from drivers.broadcast.track import Track
from drivers.broadcast.tts import Rendering, Synthesizer

T = TypeVar("T")
CHIME_GAP_S = 0.4


class AiringAudio:
    """Owns the render threads: TTS and ffmpeg block, so they never run on the loop."""

    def __init__(self, cfg: BroadcastConfig, cache_dir: Path, lexicon: Lexicon | None = None) -> None:
        self.cfg = cfg
        self.lexicon = lexicon or Lexicon(cache_dir.parent / LEXICON_FILE)
        self.synth = Synthesizer(cfg.tts, cache_dir, lexicon=self.lexicon)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tts")
        self._chime: Audio | None = None

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _render_sync(self, b: Bulletin, wanted: str | None) -> Rendering:
        if b.audio_file is not None:
            return self.synth.render_file(b.audio_file)
        return self.synth.render_text(b.text or "", wanted or b.engine, b.voice)

    async def render(self, b: Bulletin, wanted: str | None = None) -> Rendering:
        """The bulletin's levelled WAV (text through the engines, or its recording); raises TtsError."""
        return await self.in_thread(self._render_sync, b, wanted)

    def spoken_text(self, text: str) -> str:
        return self.synth.spoken_text(text)

    def _chime_audio(self) -> Audio:
        if self._chime is None:
            rate = self.cfg.tts.sample_rate
            self._chime = resample(read_wav(self.cfg.chime_file), rate) if self.cfg.chime_file else chime(rate)
        return self._chime

    def _with_chimes_sync(self, b: Bulletin, r: Rendering) -> Track:
        rate = wav_rate(r.path)
        chime, gap = resample(self._chime_audio(), rate).samples, silence(CHIME_GAP_S, rate).samples
        parts: list[np.ndarray | Path] = []
        if b.chime.before:
            parts += [chime, gap]
        parts.append(r.path)
        if b.chime.after:
            parts += [gap, chime]
        return Track(rate, tuple(parts))

    async def with_chimes(self, b: Bulletin, r: Rendering) -> Track:
        """What goes on air: the chime the bulletin asks for before and after its speech, the speech read from its
        file as it plays."""
        return await self.in_thread(self._with_chimes_sync, b, r)

    def prune(self) -> int:
        return self.synth.prune()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
