"""Probe scheduling for one link: every target on its own interval, targets staggered over the interval."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from drivers.network.config import LinkConfig, ProbeTarget
from drivers.network.linkjudge import LinkJudge
from drivers.network.probes import IcmpPinger, ProbeFn, make_probe
from drivers.network.window import hard_timeout


class LinkMonitor:
    """Sends probes and feeds their outcome into the link's judge; `changed` is called on every outcome."""

    def __init__(self, link: LinkConfig, changed: Callable[[], None]) -> None:
        self.link = link
        self.changed = changed
        self.targets: dict[str, ProbeTarget] = {t.label: t for t in link.targets}
        self.judge = LinkJudge(link.name, {label: self._timing(t) for label, t in self.targets.items()},
                               link.thresholds, time.monotonic())
        self._pinger: IcmpPinger | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def _timing(self, target: ProbeTarget) -> tuple[float, float]:
        return (target.interval_s or self.link.interval_s, target.timeout_s or self.link.timeout_s)

    async def run(self) -> None:
        source = str(self.link.source)
        if any(t.type == "icmp" for t in self.targets.values()):
            self._pinger = IcmpPinger(source, self.link.interface)
            self._pinger.open()
        try:
            n = len(self.targets)
            async with asyncio.TaskGroup() as tg:
                for i, (label, target) in enumerate(self.targets.items()):
                    probe = make_probe(target, source, self.link.interface, self._pinger)
                    interval, timeout = self._timing(target)
                    tg.create_task(self._loop(label, probe, interval, timeout, offset=i * interval / n))
        finally:
            for task in list(self._inflight):
                task.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if self._pinger is not None:
                self._pinger.close()

    async def _loop(self, label: str, probe: ProbeFn, interval: float, timeout: float, offset: float) -> None:
        await asyncio.sleep(offset)
        next_at = time.monotonic()
        while True:
            task = asyncio.create_task(self._once(label, probe, timeout))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (suspend, overload): skip the missed probes rather than burst
                next_at = time.monotonic() + interval
                delay = interval
            await asyncio.sleep(delay)

    async def _once(self, label: str, probe: ProbeFn, timeout: float) -> None:
        sample = self.judge.sent(label, time.monotonic())
        task = asyncio.ensure_future(probe(hard_timeout(timeout)))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                self.changed()  # timed out: the outage condition may now hold, judge at once
            rtt = await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        if rtt is None:
            sample.failed = True
        else:
            sample.rtt = rtt
        self.changed()
