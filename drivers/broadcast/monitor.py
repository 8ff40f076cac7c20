"""Proof that an airing was heard: the monitor input (a line-in on the amplifier's monitor output) is recorded
while the zone airs, and the RMS level over the airing says `yes` or `no`.

Capture is `arecord` as a child of its own (any ALSA device name works, and a capture that hangs is killed, not
waited on); it runs from just before the airing opens to just after it ends, and each 100 ms block is kept as its
arrival time and energy, never its samples.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agent.children import stop_child
from drivers.broadcast.config import MonitorInput

BLOCK_S = 0.1
TAIL_S = 0.3  # blocks arriving this long after the airing's end still belong to it (capture and device latency)
FLOOR_DBFS = -120.0

HeardWord = Literal["yes", "no", "not monitored"]


@dataclass(frozen=True)
class Heard:
    """The monitor's verdict on one airing: heard or not, the measured level, or why it could not tell."""

    heard: HeardWord
    level_dbfs: float | None = None
    error: str | None = None


NOT_MONITORED = Heard("not monitored")


def dbfs(energy: float, n: int) -> float:
    """RMS of n 16-bit samples whose squares sum to `energy`, in dB below full scale (floored at -120)."""
    if n <= 0 or energy <= 0:
        return FLOOR_DBFS
    return max(FLOOR_DBFS, round(20 * math.log10(math.sqrt(energy / n) / 32768.0), 1))


class MonitorCapture:
    """One airing's capture: start() before it opens, verdict() after it ends, stop() always."""

    def __init__(self, cfg: MonitorInput) -> None:
        self.cfg = cfg
        self.times: list[float] = []
        self.energy: list[float] = []
        self.block = int(cfg.rate * BLOCK_S)
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.error: str | None = None

    async def start(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                "arecord", "-q", "-D", self.cfg.device, "-f", "S16_LE", "-r", str(self.cfg.rate), "-c", "1",
                "-t", "raw", f"--period-time={int(BLOCK_S * 1e6)}", f"--buffer-time={int(4 * BLOCK_S * 1e6)}",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
        except OSError as exc:
            self.error = f"arecord: {exc.strerror or exc}"
            return
        self.reader = asyncio.create_task(self._read(), name="monitor-read")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        size = self.block * 2
        while True:
            try:
                data = await self.proc.stdout.readexactly(size)
            except asyncio.IncompleteReadError:
                return
            x = np.frombuffer(data, "<i2").astype(np.float64)
            self.times.append(time.time())
            self.energy.append(float(np.dot(x, x)))

    async def stop(self) -> None:
        """End the capture; what arecord said on its way out becomes the error when it gave no samples."""
        if self.proc is None:
            return
        await stop_child(self.proc, grace_s=1.0)
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.proc.stderr is not None and not self.times:
            words = (await self.proc.stderr.read(4096)).decode("utf-8", "replace").strip().splitlines()
            self.error = f"arecord: {words[-1] if words else f'exit {self.proc.returncode}'}"[:200]

    def verdict(self, started: float | None, ended: float | None) -> Heard:
        """The level over the airing [started, ended]: heard if at or above `heard_dbfs`."""
        if started is None or ended is None:
            return NOT_MONITORED
        picked = [e for t, e in zip(self.times, self.energy) if started < t <= ended + TAIL_S]
        if not picked:
            return Heard("not monitored", None, self.error or "monitor: no samples during the airing")
        level = dbfs(sum(picked), len(picked) * self.block)
        return Heard("yes" if level >= self.cfg.heard_dbfs else "no", level)
