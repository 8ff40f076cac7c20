"""The sound card into the amplifier, through PyAudio; the device is chosen by name."""

from __future__ import annotations

import threading
import time
from typing import Any

from drivers.broadcast.audio import Audio
from drivers.broadcast.config import SoundcardZone
from drivers.broadcast.outputs import OutputError, PlayResult, wait_until
from drivers.broadcast.track import Track


class SoundcardOutput:
    """Opens a fresh PyAudio stream per airing: a sound card unplugged and back is simply found again."""

    def __init__(self, cfg: SoundcardZone) -> None:
        self.cfg = cfg

    def open(self, audio: Audio | Track) -> SoundcardSession:
        return SoundcardSession(self.cfg, Track.of(audio))


def _find_device(pa: Any, name: str) -> int | None:
    if name == "default":
        return None
    names = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if info.get("maxOutputChannels", 0) > 0:
            names.append(str(info["name"]))
            if info["name"] == name:
                return i
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if info.get("maxOutputChannels", 0) > 0 and name.lower() in str(info["name"]).lower():
            return i
    raise OutputError(f"no output device named {name!r} (have: {', '.join(names) or 'none'})")


class SoundcardSession:
    def __init__(self, cfg: SoundcardZone, audio: Track) -> None:
        import pyaudio

        self.audio = audio
        self.pa = pyaudio.PyAudio()
        self.frames = max(1, audio.rate * cfg.buffer_ms // 1000)
        try:
            index = _find_device(self.pa, cfg.device)
            self.stream = self.pa.open(format=pyaudio.paInt16, channels=1, rate=audio.rate, output=True,
                                       output_device_index=index, frames_per_buffer=self.frames, start=False)
        except OSError as exc:
            self.pa.terminate()
            raise OutputError(f"sound card {cfg.device!r}: {exc}") from None
        except OutputError:
            self.pa.terminate()
            raise

    def play(self, deadline: float, cancel: threading.Event) -> PlayResult:
        if not wait_until(deadline, cancel):
            now = time.time()
            return PlayResult(now, now, True)
        try:
            self.stream.start_stream()
            started = time.time()
            for piece in self.audio.pieces(self.frames):  # read and scaled a buffer at a time
                if cancel.is_set():
                    return PlayResult(started, time.time(), True)
                self.stream.write(piece.astype("<i2").tobytes())
            self.stream.stop_stream()
        except OSError as exc:
            raise OutputError(f"sound card: {exc}") from None
        return PlayResult(started, time.time(), False)

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.pa.terminate()
