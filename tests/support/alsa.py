"""ALSA without a sound card: the default device written into a WAV file, for agents that air bulletins; unpaced
(alsa_home, for tests that do not care how long an airing takes) or paced in real time (PacedSoundcard)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
import wave
from pathlib import Path

ASOUNDRC = ('pcm.!default {{ type plug; slave.pcm "cap" }}\n'
            'pcm.cap {{ type file; slave.pcm "null"; file "{out}"; format "wav" }}\n')


def alsa_home(home: Path, out: Path) -> Path:
    """A HOME whose .asoundrc sends the default ALSA device into a WAV file (no sound card here)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".asoundrc").write_text(ASOUNDRC.format(out=out))
    return home


PACED_ASOUNDRC = ('pcm.!default {{ type plug; slave {{ pcm "paced"; rate {rate}; format S16_LE; channels 1 }} }}\n'
                  'pcm.paced {{ type file; slave.pcm "null"; file "{fifo}"; format "raw" }}\n'
                  'pcm.{monitor} {{ type file; slave.pcm "null"; file "/dev/null"; infile "{line_in}"; '
                  'format "raw" }}\n')
F_SETPIPE_SZ = 1031
TICK_S = 0.020
# The file plugin reads its infile once per capture period and leaves whatever a short read did not fill, so
# the line-in is written a whole period at a time; drivers/broadcast/monitor.py asks arecord for 100 ms periods.
LINE_IN_PERIOD_S = 0.100


class PacedSoundcard:
    """ALSA's default device as a sound card with a clock, and a line-in wired to its amplifier's monitor output.

    The file plugin alone writes as fast as it is fed (its `null` slave has no clock), so 25 s of speech "played"
    in 2 ms. Here it writes into a FIFO of one page that this thread empties 20 ms of samples per 20 ms, so a
    write blocks as on a real card; what it plays goes into `out` (a WAV, valid after every write) and, unless
    the cable is cut, into the `monitor` capture device (silence when nothing plays, as a real line-in gives).
    """

    def __init__(self, home: Path, out: Path, rate: int = 16000, monitor: str = "monitor") -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home, self.out, self.rate, self.monitor = home, out, rate, monitor
        fifo, line_in = home / "soundcard.fifo", home / "line-in.fifo"
        for f in (fifo, line_in):
            f.unlink(missing_ok=True)
            os.mkfifo(f)
        # read-write: our end keeps each FIFO open between airings, so neither side ever blocks on open
        self.play_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self.line_fd = os.open(line_in, os.O_RDWR | os.O_NONBLOCK)
        for fd in (self.play_fd, self.line_fd):
            fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
        (home / ".asoundrc").write_text(PACED_ASOUNDRC.format(rate=rate, fifo=fifo, line_in=line_in, monitor=monitor))
        self.wav = wave.open(str(out), "wb")
        self.wav.setnchannels(1)
        self.wav.setsampwidth(2)
        self.wav.setframerate(rate)
        self.cable_cut = threading.Event()
        self.played_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-soundcard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        size = int(self.rate * TICK_S) * 2
        period = int(self.rate * LINE_IN_PERIOD_S) * 2
        line = b""
        due = time.monotonic()
        while not self._stop.is_set():
            due += TICK_S
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -1.0:  # the machine stalled: carry on from now rather than race to catch up
                due = time.monotonic()
            try:
                data = os.read(self.play_fd, size)
            except BlockingIOError:
                data = b""
            if data:
                self.wav.writeframes(data)
                self.played_s += len(data) / 2 / self.rate
            heard = b"" if self.cable_cut.is_set() else data
            line += heard + b"\0" * (size - len(heard))
            if len(line) >= period:
                try:  # one period in one atomic write: a capture period is always read whole
                    os.write(self.line_fd, line[:period])
                except BlockingIOError:  # nobody records: the line-in's buffer overruns, as a real one does
                    pass
                line = line[period:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.wav.close()
        os.close(self.play_fd)
        os.close(self.line_fd)
