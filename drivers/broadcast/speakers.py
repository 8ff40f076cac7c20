"""Which loudspeakers answer: every zone's speakers checked on a schedule and before an airing.

A speaker is down after `down_after` failed checks in a row and up again at its first answer; each change is an
event to the COC (`speaker_down` / `speaker_up`) and a line in the log. A zone whose speakers are all down is
unreachable: its airings are recorded as `unreachable`, not `played`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

from agent.driver import Context, Event
from drivers.broadcast.config import BroadcastConfig, Speaker
from drivers.broadcast.probes import http_status, ping, sip_ping


@dataclass
class SpeakerState:
    """What the checks have found about one speaker."""

    zone: str
    speaker: Speaker
    up: bool | None = None  # None until the first check decides
    failures: int = 0
    error: str | None = None
    since: float | None = None
    checked: float | None = None

    def doc(self) -> dict[str, Any]:
        s = self.speaker
        return {"name": s.label, "host": s.host, "status_url": s.status_url, "sip": s.sip, "up": self.up,
                "error": self.error, "since": self.since, "checked": self.checked, "failures": self.failures}


async def check(speaker: Speaker, timeout: float) -> str | None:
    """Every check the speaker has, at once; None when all answered, else the failures joined."""
    probes = []
    if speaker.host:
        probes.append(ping(speaker.host, timeout))
    if speaker.status_url:
        probes.append(http_status(speaker.status_url, timeout))
    if speaker.sip:
        probes.append(sip_ping(speaker.sip, timeout))
    errors = [e for e in await asyncio.gather(*probes) if e]
    return "; ".join(errors) or None


class SpeakerWatch:
    """Holds each zone's speaker states; `changed` is called after any speaker goes up or down."""

    def __init__(self, cfg: BroadcastConfig, ctx: Context, changed: Callable[[], None]) -> None:
        self.checks = cfg.speaker_checks
        self.ctx = ctx
        self.changed = changed
        self.zones = {name: [SpeakerState(name, s) for s in z.speakers] for name, z in cfg.zones.items() if z.speakers}
        self._locks = {name: asyncio.Lock() for name in self.zones}

    async def check_zone(self, zone: str) -> None:
        """Check a zone's speakers now; one check of a zone at a time (a schedule round and an airing may meet)."""
        states = self.zones.get(zone)
        if not states:
            return
        async with self._locks[zone]:
            results = await asyncio.gather(*(check(st.speaker, self.checks.timeout_s) for st in states))
            for st, error in zip(states, results):
                await self._apply(st, error)

    async def _apply(self, st: SpeakerState, error: str | None) -> None:
        now = time.time()
        st.checked, st.error = now, error
        if error is None:
            st.failures = 0
            if st.up is not True:
                was = st.up
                st.up, st.since = True, now
                if was is False:
                    await self._event(st, "speaker_up", "info")
                else:  # the first answer since start: news to the console, not to the COC
                    self.ctx.log.info("speaker_up", zone=st.zone, speaker=st.speaker.label)
                    self.changed()
            return
        st.failures += 1
        if st.failures >= self.checks.down_after and st.up is not False:
            st.up, st.since = False, now
            self.ctx.count("speaker_down")
            await self._event(st, "speaker_down", "warning")

    async def _event(self, st: SpeakerState, kind: str, severity: str) -> None:
        unreachable = self.unreachable(st.zone) is not None
        log = self.ctx.log.warning if kind == "speaker_down" else self.ctx.log.info
        log(kind, zone=st.zone, speaker=st.speaker.label, error=st.error, zone_unreachable=unreachable)
        self.changed()
        await self.ctx.emit(Event(kind=kind, severity=severity,  # type: ignore[arg-type]
                                  data={"zone": st.zone, "speaker": st.speaker.label, "host": st.speaker.host,
                                        "error": st.error, "zone_unreachable": unreachable}))

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check_zone(z) for z in self.zones))

    async def run(self) -> None:
        """Every zone's speakers, every interval_s, measured from the start of one round to the next."""
        while True:
            began = time.monotonic()
            await self.check_all()
            await asyncio.sleep(max(0.0, self.checks.interval_s - (time.monotonic() - began)))

    def unreachable(self, zone: str) -> str | None:
        """Why the zone cannot be heard when every one of its speakers is down; None while one may still be up."""
        states = self.zones.get(zone)
        if not states or any(st.up is not False for st in states):
            return None
        return "speakers unreachable: " + "; ".join(f"{st.speaker.label} ({st.error})" for st in states)

    def down(self) -> list[str]:
        return [f"{st.zone}/{st.speaker.label}" for states in self.zones.values() for st in states if st.up is False]

    def unreachable_zones(self) -> list[str]:
        return [z for z in self.zones if self.unreachable(z) is not None]

    def doc(self) -> dict[str, list[dict[str, Any]]]:
        return {zone: [st.doc() for st in states] for zone, states in self.zones.items()}
