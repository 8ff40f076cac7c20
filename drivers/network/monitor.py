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

    def __init__(self, link: LinkConfig, changed: Callable[[], None], can_be_sparse: bool = False) -> None:
        self.link = link
        self.changed = changed
        self.targets: dict[str, ProbeTarget] = {t.label: t for t in link.targets}
        self.judge = LinkJudge(link.name, {label: self._timing(t) for label, t in self.targets.items()},
                               link.thresholds, time.monotonic(),
                               sparse_s=link.standby_interval_s if can_be_sparse else None)
        self._pinger: IcmpPinger | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._rate_changed: list[asyncio.Event] = []

    @property
    def sparse(self) -> bool:
        return self.judge.sparse

    def set_sparse(self, sparse: bool) -> None:
        """Probe every target at standby_interval_s (a link not needed now) or at its own rate; a change takes
        effect at once (a sleeping probe loop is woken)."""
        if sparse == self.judge.sparse or self.judge.sparse_s is None:
            return
        self.judge.set_sparse(sparse)
        for ev in self._rate_changed:
            ev.set()

    def _timing(self, target: ProbeTarget) -> tuple[float, float]:
        return (target.interval_s or self.link.interval_s, target.timeout_s or self.link.timeout_s)

    def _interval(self, target: ProbeTarget) -> float:
        if self.judge.sparse and self.judge.sparse_s is not None:
            return max(self.judge.sparse_s, self._timing(target)[0])
        return self._timing(target)[0]

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
                    tg.create_task(self._loop(label, probe, target, phase=i / n))
        finally:
            for task in list(self._inflight):
                task.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if self._pinger is not None:
                self._pinger.close()

    async def _loop(self, label: str, probe: ProbeFn, target: ProbeTarget, phase: float) -> None:
        """Probe one target forever; `phase` (0..1) staggers the targets over the interval."""
        woken = asyncio.Event()
        self._rate_changed.append(woken)
        await asyncio.sleep(phase * self._interval(target))
        next_at = time.monotonic()
        while True:
            interval, timeout = self._interval(target), self._timing(target)[1]
            task = asyncio.create_task(self._once(label, probe, timeout))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (suspend, overload): skip the missed probes rather than burst
                next_at = time.monotonic() + interval
                delay = interval
            woken.clear()
            try:
                async with asyncio.timeout(delay):
                    await woken.wait()
            except TimeoutError:
                continue
            # the rate changed: continue at the new rate, staggered like at start
            await asyncio.sleep(phase * self._interval(target))
            next_at = time.monotonic()

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
