"""The airing loop: keeps the schedule in line with the store, skips misfires, honours quiet hours, dispatches."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.driver import Context, Event
from drivers.broadcast.airing_audio import AiringAudio
from drivers.broadcast.airtimes import Airing, in_quiet_hours, local_iso, next_airings
from drivers.broadcast.api import STATE_FILE
from drivers.broadcast.asrun import AsRun
from drivers.broadcast.bulletin import Bulletin, BulletinError
from drivers.broadcast.config import BroadcastConfig
from drivers.broadcast.onair import OnAirZones
from drivers.broadcast.player import ZoneAiring, ZonePlayer
from drivers.broadcast.speakers import SpeakerWatch
from drivers.broadcast.store import Store
from drivers.broadcast.track import Track
from drivers.broadcast.tts import Rendering, TtsError

MAX_MISSED_SCAN = 100_000


@dataclass
class Entry:
    """A bulletin being scheduled, with its rendering and its next airing."""

    bulletin: Bulletin
    source: str
    cursor: float
    rendering: Rendering | None = None
    render_task: asyncio.Task[None] | None = None
    error: str | None = None
    next: Airing | None = None
    prepared: tuple[str, Track] | None = None


class Scheduler:
    """Everything one run of the driver schedules; rebuilt from the store after a restart."""

    def __init__(self, ctx: Context, store: Store, airing_audio: AiringAudio, players: dict[str, ZonePlayer]) -> None:
        self.ctx = ctx
        self.cfg: BroadcastConfig = ctx.config
        self.tz = ctx.timezone
        self.log = ctx.log
        self.store = store
        self.airing_audio = airing_audio
        self.players = players
        self.entries: dict[str, Entry] = {}
        self.file_errors: dict[str, str] = {}
        self.changed = asyncio.Event()
        self.version = -1
        self.state_path: Path = ctx.data_dir / STATE_FILE
        self.speakers = SpeakerWatch(self.cfg, ctx, self.speakers_changed)
        self.on_air = OnAirZones(ctx, self.write_state)
        self.silent: dict[str, dict[str, Any]] = {}  # zones whose last played airing the monitor did not hear
        self._checks: set[asyncio.Future[None]] = set()  # speaker checks before an airing, still running

    # ---- accepting bulletins -------------------------------------------------------------------------------
    def check_zones(self, b: Bulletin, where: str) -> None:
        unknown = [z for z in b.zones or [] if z not in self.cfg.zones]
        if unknown:
            known = ", ".join(self.cfg.zones)
            raise BulletinError(f"{where}: zones: unknown zone {unknown[0]!r} (configured: {known})")

    def accept(self, b: Bulletin, source: str) -> list[str]:
        """Store a bulletin (new or updated) and schedule it; returns its next airings as local ISO times."""
        self.store.put(b, source)
        self.sync()
        entry = self.entries.get(b.id)
        return self.upcoming(entry) if entry else []

    def cancel(self, bulletin_id: str, why: str) -> bool:
        done = self.store.cancel(bulletin_id)
        self.sync()
        if done:
            self.log.info("bulletin_cancelled", bulletin=bulletin_id, by=why)
        return done

    def upcoming(self, entry: Entry, n: int = 5) -> list[str]:
        dur = entry.rendering.duration_s if entry.rendering else 0.0
        return [local_iso(a.scheduled, self.tz) for a in next_airings(entry.bulletin, self.tz, entry.cursor, dur, n)]

    def sync(self) -> None:
        """Bring the in-memory schedule in line with the store (our writes, the CLI's writes)."""
        version = self.store.data_version()
        rows = {s.bulletin.id: s for s in self.store.all()}
        for bid in list(self.entries):
            if bid not in rows:
                entry = self.entries.pop(bid)
                if entry.render_task:
                    entry.render_task.cancel()
                for p in self.players.values():
                    p.stop_bulletin(bid, "cancelled by the operator")
        for bid, s in rows.items():
            entry = self.entries.get(bid)
            if entry is not None and entry.bulletin == s.bulletin:
                entry.cursor = max(entry.cursor, s.cursor)
                continue
            if entry is not None and entry.render_task:
                entry.render_task.cancel()
            entry = Entry(s.bulletin, s.source, s.cursor)
            self.entries[bid] = entry
            self.log.info("bulletin_scheduled", bulletin=bid, source=s.source, priority=s.bulletin.priority)
            entry.render_task = asyncio.get_running_loop().create_task(self._render(entry))
            self._plan(entry)
            if entry.next is None:
                self.log.warning("bulletin_has_no_future_airing", bulletin=bid)
        self.version = version
        self.changed.set()
        self.write_state()

    # ---- airing audio ------------------------------------------------------------------------------------
    async def _render(self, entry: Entry, wanted: str | None = None) -> None:
        b = entry.bulletin
        try:
            r = await self.airing_audio.render(b, wanted)
        except TtsError as exc:
            entry.error = str(exc)
            self.ctx.count("render_failed")
            self.log.warning("render_failed", bulletin=b.id, error=str(exc))
        except Exception as exc:  # a bug or an OS error: said out loud, never a bulletin silently left unrendered
            entry.error = f"{type(exc).__name__}: {exc}"[:300]
            self.ctx.count("render_failed")
            self.log.exception("render_failed", exc, bulletin=b.id)
        else:
            entry.rendering, entry.error, entry.prepared = r, None, None
            self.log.info("rendered", bulletin=b.id, engine=r.engine, duration_s=round(r.duration_s, 2),
                          took_s=round(r.seconds_taken, 3))
            self._plan(entry)
        self.write_state()

    async def _ready_audio(self, entry: Entry, budget_s: float) -> tuple[Track, str]:
        """The airing's audio with chimes; if gTTS is still busy, speak offline now rather than wait on the net."""
        task = entry.render_task
        if entry.rendering is None and task is not None and not task.done():
            try:
                async with asyncio.timeout(max(0.05, budget_s)):
                    await asyncio.shield(task)
            except TimeoutError:
                if entry.bulletin.text is not None and "espeak" in self.cfg.tts.engines:
                    self.log.warning("render_late_fallback", bulletin=entry.bulletin.id)
                    await self._render(entry, "espeak")
        if entry.rendering is None:
            raise TtsError(entry.error or "not rendered")
        r = entry.rendering
        if entry.prepared is None or entry.prepared[0] != str(r.path):
            entry.prepared = (str(r.path), await self.airing_audio.with_chimes(entry.bulletin, r))
        return entry.prepared[1], r.engine

    def rerender(self) -> None:
        """The lexicon changed: every text bulletin is spoken again (its new words make a new cache key)."""
        for entry in self.entries.values():
            if entry.bulletin.text is None:
                continue
            if entry.render_task:
                entry.render_task.cancel()
            entry.render_task = asyncio.get_running_loop().create_task(self._render(entry))

    async def preview(self, b: Bulletin) -> dict[str, Any]:
        """What a bulletin would sound like, without scheduling it: spoken text and the rendered WAV's path."""
        r = await self.airing_audio.render(b)
        spoken = self.airing_audio.spoken_text(b.text) if b.text is not None else None
        return {"id": b.id, "spoken": spoken, "engine": r.engine, "duration_s": round(r.duration_s, 2),
                "wav": str(r.path)}

    # ---- scheduling ----------------------------------------------------------------------------------------
    def _plan(self, entry: Entry) -> None:
        dur = entry.rendering.duration_s if entry.rendering else 0.0
        nxt = next_airings(entry.bulletin, self.tz, entry.cursor, dur, 1)
        entry.next = nxt[0] if nxt else None
        self.changed.set()

    def _skip_missed(self, entry: Entry, now: float) -> list[AsRun]:
        """Airings older than the misfire grace (agent down, clock jump) are skipped once, as one logged decision."""
        grace = self.cfg.misfire_grace_s
        missed: list[Airing] = []
        while entry.next is not None and now - entry.next.scheduled > grace and len(missed) < MAX_MISSED_SCAN:
            missed.append(entry.next)
            entry.cursor = entry.next.scheduled
            self._plan(entry)
        if not missed:
            return []
        last = missed[-1]
        self.store.set_cursor(entry.bulletin.id, entry.cursor)
        late = now - last.scheduled
        self.log.warning("misfire_skip", bulletin=entry.bulletin.id, missed=len(missed),
                         last_scheduled=local_iso(last.scheduled, self.tz), late_s=round(late, 1), grace_s=grace)
        reason = (f"misfire: {len(missed)} airing(s) missed, last {late:.0f} s ago, beyond the grace of {grace} s")
        b = entry.bulletin
        return [AsRun(b.id, b.title, z, b.priority, last.repeat, last.scheduled, "skipped", reason)
                for z in self.cfg.zones_for(b.zones)]

    def _quiet(self, b: Bulletin, airing: Airing) -> bool:
        """Only emergencies air in quiet hours."""
        return b.priority != "emergency" and in_quiet_hours(self.cfg.quiet_hours, airing.scheduled, self.tz)

    async def _dispatch(self, entry: Entry, airing: Airing, bypass_quiet: bool = False) -> None:
        b = entry.bulletin
        late = time.time() - airing.scheduled
        if late > 1.0:
            self.log.info("misfire_play", bulletin=b.id, scheduled=local_iso(airing.scheduled, self.tz),
                          late_s=round(late, 1), grace_s=self.cfg.misfire_grace_s)
        zones = self.cfg.zones_for(b.zones)
        reason = None if bypass_quiet or not self._quiet(b, airing) else "quiet hours"
        if reason is None:
            try:
                audio, engine = await self._ready_audio(entry, airing.scheduled - time.time() - 0.3)
            except TtsError as exc:
                for z in zones:
                    await self.record(AsRun(b.id, b.title, z, b.priority, airing.repeat, airing.scheduled, "failed",
                                            f"no audio: {exc}"))
                return
        if reason is None:
            await self._check_speakers(zones, airing.scheduled - time.time() - 0.2)
        for z in zones:
            player = self.players.get(z)
            if reason is not None or player is None:
                await self.record(AsRun(b.id, b.title, z, b.priority, airing.repeat, airing.scheduled, "skipped",
                                        reason or f"unknown zone {z!r}"))
                continue
            why = self.speakers.unreachable(z)
            if why is not None:  # nobody would hear it: said so in the as-run log, not aired into the void
                await self.record(AsRun(b.id, b.title, z, b.priority, airing.repeat, airing.scheduled, "unreachable",
                                        why, engine=engine))
                continue
            player.submit(ZoneAiring(b, airing.repeat, airing.scheduled, audio, engine))

    async def _check_speakers(self, zones: list[str], budget_s: float) -> None:
        """The zones' speakers checked again right before airtime, within what is left before it; a check still
        running then goes on and counts for the next decision."""
        if not self.cfg.speaker_checks.before_airing:
            return
        checks = [asyncio.ensure_future(self.speakers.check_zone(z)) for z in zones if z in self.speakers.zones]
        for check in checks:
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)
        if checks:
            await asyncio.wait(checks, timeout=max(0.05, budget_s))

    async def play_now(self, b: Bulletin) -> dict[str, Any]:
        """Air a bulletin as soon as it is rendered (bypassing quiet hours: the operator asked for it)."""
        entry = self.entries.get(b.id)
        if entry is None or entry.bulletin != b:
            entry = Entry(b, "play-now", time.time())
            entry.render_task = asyncio.get_running_loop().create_task(self._render(entry))
        _, engine = await self._ready_audio(entry, 3.0)
        airing = Airing(time.time() + 0.2, b.id, 0)
        await self._dispatch(entry, airing, bypass_quiet=True)
        return {"id": b.id, "engine": engine, "scheduled_at": local_iso(airing.scheduled, self.tz),
                "zones": self.cfg.zones_for(b.zones)}

    async def record(self, rec: AsRun) -> None:
        """One as-run record: stored locally first, then emitted to the COC."""
        data = rec.record()
        ev = rec.event(self.tz)
        data["event_id"] = ev.id
        self.store.add_asrun(data)
        log = self.log.info if rec.outcome == "played" else self.log.warning
        log("asrun", bulletin=rec.bulletin_id, zone=rec.zone, outcome=rec.outcome, lateness_ms=rec.lateness_ms,
            engine=rec.engine, reason=rec.reason, heard=rec.heard, level_dbfs=rec.level_dbfs)
        if rec.outcome != "played":
            self.ctx.count(f"airing_{rec.outcome}")
        zone = self.cfg.zones.get(rec.zone)
        if rec.started is not None and zone is not None and zone.monitor and rec.heard == "not monitored":
            self.ctx.count("monitor_failed")  # it aired, the monitor gave nothing (the player logged why)
        await self.ctx.emit(ev)
        if rec.outcome == "played" and rec.heard in ("yes", "no"):
            await self._heard(rec, ev.id)

    async def _heard(self, rec: AsRun, asrun_id: str) -> None:
        """A played airing the monitor did not hear is an alarm (amplifier off, cable cut) until one is heard."""
        if rec.heard == "yes":
            if self.silent.pop(rec.zone, None) is not None:
                self.log.info("airing_heard_again", zone=rec.zone, bulletin=rec.bulletin_id, level_dbfs=rec.level_dbfs)
                self.refresh_health()
                self.write_state()
            return
        self.silent[rec.zone] = {"bulletin_id": rec.bulletin_id, "level_dbfs": rec.level_dbfs, "at": rec.started}
        self.ctx.count("airing_silent")
        self.log.error("airing_silent", zone=rec.zone, bulletin=rec.bulletin_id, level_dbfs=rec.level_dbfs,
                       heard_dbfs=self.cfg.zones[rec.zone].monitor.heard_dbfs)  # type: ignore[union-attr]
        self.refresh_health()
        self.write_state()
        await self.ctx.emit(Event(kind="airing_silent", severity="critical",
                                  data={"zone": rec.zone, "bulletin_id": rec.bulletin_id, "title": rec.title,
                                        "level_dbfs": rec.level_dbfs, "asrun_event_id": asrun_id,
                                        "started": rec.started, "ended": rec.ended}))

    def speakers_changed(self) -> None:
        self.refresh_health()
        self.write_state()

    def refresh_health(self) -> None:
        """ok, or degraded naming the speakers that are down, the zones nobody can hear and the silent monitors."""
        down, unreachable = self.speakers.down(), self.speakers.unreachable_zones()
        if not down and not self.silent:
            self.ctx.health("ok", "{bulletins} bulletins, {zones} zones", bulletins=len(self.entries),
                            zones=len(self.players))
            return
        self.ctx.health("degraded", "speakers down: {down}; zones unreachable: {unreachable}; not heard: {silent}",
                        down=", ".join(down) or "-", unreachable=", ".join(unreachable) or "-",
                        silent=", ".join(self.silent) or "-")

    # ---- loops ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Wake ahead of each airing; the store changing (CLI, console) wakes it too."""
        while True:
            if self.store.data_version() != self.version:
                self.sync()
            now = time.time()
            for entry in list(self.entries.values()):
                for rec in self._skip_missed(entry, now):
                    await self.record(rec)
            due = sorted((e.next, e) for e in self.entries.values()
                         if e.next is not None and e.next.scheduled - self.cfg.wake_ahead_s <= now)
            for airing, entry in due:
                entry.cursor = airing.scheduled
                self.store.set_cursor(entry.bulletin.id, airing.scheduled)
                self._plan(entry)
                await self._dispatch(entry, airing)
            if due:
                self.write_state()
                continue
            wakes = [e.next.scheduled - self.cfg.wake_ahead_s for e in self.entries.values() if e.next is not None]
            timeout = min([1.0] + [w - time.time() for w in wakes])
            self.changed.clear()
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await self.changed.wait()
            except TimeoutError:
                pass

    async def retry_gtts(self) -> None:
        """Bulletins spoken by espeak because the internet was down get gTTS again once it is back."""
        while True:
            await asyncio.sleep(self.cfg.tts.retry_gtts_s)
            self.airing_audio.prune()
            self.store.prune_asrun(time.time() - self.cfg.asrun_keep_days * 86400)
            if "gtts" not in self.cfg.tts.engines or not self.ctx.uplink_connected:
                continue
            for entry in list(self.entries.values()):
                r = entry.rendering
                if r is not None and r.engine == "espeak" and entry.bulletin.engine != "espeak":
                    await self._render(entry, "gtts")

    def state(self) -> dict[str, Any]:
        """What `commune-agent bulletin list` and the console show about live state."""
        return {
            "updated": time.time(),
            "bulletins": {bid: {"next": local_iso(e.next.scheduled, self.tz) if e.next else None,
                                "engine": e.rendering.engine if e.rendering else None,
                                "duration_s": round(e.rendering.duration_s, 2) if e.rendering else None,
                                "error": e.error} for bid, e in self.entries.items()},
            "file_errors": self.file_errors,
            "speakers": self.speakers.doc(),
            "silent": self.silent,
            "on_air": self.on_air.state(),
        }

    def write_state(self) -> None:
        self.ctx.write_state(self.state_path, self.state())

    def stop_renders(self) -> None:
        """Renders and speaker checks still running when the driver stops end with it."""
        for e in self.entries.values():
            if e.render_task:
                e.render_task.cancel()
        for check in list(self._checks):
            check.cancel()
