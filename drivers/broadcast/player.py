"""One player per zone: plays its queue in order of priority, each zone in its own thread, in parallel."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal

from agent.logs import KvLogger
from drivers.broadcast.asrun import AsRun
from drivers.broadcast.bulletin import Bulletin
from drivers.broadcast.config import MonitorInput
from drivers.broadcast.monitor import NOT_MONITORED, Heard, MonitorCapture
from drivers.broadcast.onair import OnAir, OnAirZones
from drivers.broadcast.outputs import Output, OutputError, PlayResult
from drivers.broadcast.track import Track

_seq = itertools.count()


def _realtime(priority: int, log: KvLogger) -> None:
    """Pace audio from a SCHED_RR thread when allowed, so a busy box does not delay packets; best effort."""
    if priority <= 0:
        return
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        log.info("realtime_priority_unavailable", priority=priority, error=str(exc))


@dataclass
class ZoneAiring:
    """One airing of one bulletin on one zone."""

    bulletin: Bulletin
    repeat: int
    scheduled: float
    audio: Track
    engine: str
    cancel: threading.Event = field(default_factory=threading.Event)
    stopped_by: str | None = None
    order: int = field(default_factory=lambda: next(_seq))

    def sort_key(self) -> tuple[int, float, int]:
        return (-self.bulletin.rank, self.scheduled, self.order)

    def asrun(self, zone: str, outcome: str, reason: str | None = None, result: PlayResult | None = None,
              heard: Heard = NOT_MONITORED) -> AsRun:
        return AsRun(self.bulletin.id, self.bulletin.title, zone, self.bulletin.priority, self.repeat, self.scheduled,
                     outcome, reason, result.started if result else None, result.ended if result else None,  # type: ignore[arg-type]
                     self.engine, heard.heard, heard.level_dbfs)


ResultSink = Callable[[AsRun], Awaitable[None]]
Unreachable = Callable[[], "str | None"]  # why the zone's speakers cannot be heard, None while they may be


class ZonePlayer:
    """Emergencies interrupt whatever is playing at their airtime; the interrupted airing is requeued or marked."""

    def __init__(self, name: str, output: Output, volume: float, sink: ResultSink,
                 interrupt_policy: Literal["requeue", "mark"], log: KvLogger, rt_priority: int = 0,
                 monitor: MonitorInput | None = None, unreachable: Unreachable = lambda: None,
                 on_air: OnAirZones | None = None) -> None:
        self.name = name
        self.on_air = on_air
        self.monitor = monitor
        self.unreachable = unreachable
        self.output = output
        self.volume = volume
        self.sink = sink
        self.policy = interrupt_policy
        self.log = log
        self.queue: list[ZoneAiring] = []
        self.current: ZoneAiring | None = None
        self._wake = asyncio.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"zone-{name}",
                                        initializer=_realtime, initargs=(rt_priority, log))

    def submit(self, airing: ZoneAiring) -> None:
        self.queue.append(airing)
        self._wake.set()
        cur = self.current
        if airing.bulletin.priority == "emergency" and cur is not None and cur.bulletin.priority != "emergency":
            delay = max(0.0, airing.scheduled - time.time())
            asyncio.get_running_loop().call_later(delay, self._interrupt, cur, airing.bulletin.id)

    def _interrupt(self, airing: ZoneAiring, by: str) -> None:
        if self.current is airing and not airing.cancel.is_set():
            airing.stopped_by = f"emergency {by}"
            airing.cancel.set()

    def stop_bulletin(self, bulletin_id: str, why: str) -> int:
        """Drop a cancelled bulletin's waiting airings and stop it if it is on air now."""
        dropped = [j for j in self.queue if j.bulletin.id == bulletin_id]
        self.queue = [j for j in self.queue if j.bulletin.id != bulletin_id]
        cur = self.current
        if cur is not None and cur.bulletin.id == bulletin_id:
            cur.stopped_by = why
            cur.cancel.set()
        return len(dropped)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                airing = min(self.queue, key=ZoneAiring.sort_key)
                self.queue.remove(airing)
                self.current = airing
                b = airing.bulletin
                if self.on_air is not None:
                    self.on_air.began(OnAir(self.name, b.id, b.title, b.priority, max(airing.scheduled, time.time()),
                                            b.text if b.priority == "emergency" else None))
                capture = MonitorCapture(self.monitor) if self.monitor else None
                try:
                    if capture:
                        await capture.start()
                    result = await loop.run_in_executor(self._pool, self._air, airing)
                except OutputError as exc:
                    self.current = None
                    self.log.warning("airing_failed", zone=self.name, bulletin=airing.bulletin.id, error=str(exc))
                    await self.sink(airing.asrun(self.name, "failed", str(exc)))
                    continue
                finally:
                    if self.on_air is not None:
                        self.on_air.ended(self.name)
                    if capture:
                        await capture.stop()
                self.current = None
                heard = capture.verdict(result.started, result.ended) if capture else NOT_MONITORED
                if heard.error:
                    self.log.warning("monitor_failed", zone=self.name, error=heard.error)
                await self._finished(airing, result, heard)
        finally:
            for airing in [self.current, *self.queue]:
                if airing is not None:
                    airing.cancel.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self.on_air is not None:
                self.on_air.ended(self.name)

    async def _finished(self, airing: ZoneAiring, result: PlayResult, heard: Heard) -> None:
        if not result.interrupted:
            why = self.unreachable()  # the speakers went down while it aired
            await self.sink(airing.asrun(self.name, "unreachable" if why else "played", why, result, heard))
            return
        why = airing.stopped_by or "stopped"
        if why.startswith("emergency") and self.policy == "requeue":
            self.queue.append(ZoneAiring(airing.bulletin, airing.repeat, airing.scheduled, airing.audio, airing.engine))
            self._wake.set()
            why += "; requeued to play again after it"
        await self.sink(airing.asrun(self.name, "interrupted", f"interrupted by {why}", result, heard))

    def _air(self, airing: ZoneAiring) -> PlayResult:
        """Runs in the zone's thread: open the output ahead of time, then start on the deadline."""
        gain = self.volume * airing.bulletin.volume
        session = self.output.open(airing.audio.with_gain(gain))  # scaled piece by piece as it plays
        try:
            deadline = time.monotonic() + (airing.scheduled - time.time())
            return session.play(deadline, airing.cancel)
        finally:
            session.close()
