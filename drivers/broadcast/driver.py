"""The broadcast driver: keeps the schedule, pre-renders speech, wakes ahead of airtime and hands airings to zones."""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from agent.driver import Context
from drivers.broadcast.asrun import AsRun
from drivers.broadcast.audio import Audio, chime, concat, read_wav, resample, silence
from drivers.broadcast.bulletin import Bulletin, BulletinError
from drivers.broadcast.commands import CommandHandler
from drivers.broadcast.config import BroadcastConfig, HttpZone, RtpZone, SoundcardZone
from drivers.broadcast.outputs import Output
from drivers.broadcast.outputs.httppush import HttpPushOutput
from drivers.broadcast.outputs.rtp import RtpOutput
from drivers.broadcast.outputs.soundcard import SoundcardOutput
from drivers.broadcast.player import Job, ZonePlayer
from drivers.broadcast.schedule import Airing, in_quiet_hours, local_iso, next_airings
from drivers.broadcast.store import Store
from drivers.broadcast.tts import Rendering, Synthesizer, TtsError
from drivers.broadcast.watcher import BulletinDir

STATE_FILE = "state.json"
DB_FILE = "broadcast.db"
MAX_MISSED_SCAN = 100_000


def make_output(zone: SoundcardZone | RtpZone | HttpZone) -> Output:
    if isinstance(zone, SoundcardZone):
        return SoundcardOutput(zone)
    if isinstance(zone, RtpZone):
        return RtpOutput(zone)
    return HttpPushOutput(zone)


@dataclass
class Entry:
    """A bulletin the driver is scheduling, with its rendering and its next airing."""

    bulletin: Bulletin
    source: str
    cursor: float
    rendering: Rendering | None = None
    render_task: asyncio.Task[None] | None = None
    error: str | None = None
    next: Airing | None = None
    prepared: tuple[str, Audio] | None = None


class Broadcast:
    """Everything one run of the driver owns; rebuilt from the store after a restart."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg: BroadcastConfig = ctx.config
        self.tz = ctx.timezone
        self.log = ctx.log
        self.store = Store(ctx.data_dir / DB_FILE)
        self.synth = Synthesizer(self.cfg.tts, ctx.data_dir / "tts-cache")
        self.render_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tts")
        self.entries: dict[str, Entry] = {}
        self.players = {name: ZonePlayer(name, make_output(z), z.volume, self._record, self.cfg.emergency_interrupt,
                                         self.log.child(name), self.cfg.realtime_priority)
                        for name, z in self.cfg.zones.items()}
        self.dir = BulletinDir(self.cfg.bulletin_dir, self.cfg.tts.max_chars) if self.cfg.bulletin_dir else None
        self.file_errors: dict[str, str] = {}
        self.changed = asyncio.Event()
        self.version = -1
        self._chime: Audio | None = None

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
        self._write_state()

    # ---- speech ------------------------------------------------------------------------------------------
    def _render_sync(self, b: Bulletin, wanted: str | None = None) -> Rendering:
        if b.audio_file is not None:
            return self.synth.render_file(b.audio_file)
        return self.synth.render_text(b.text or "", wanted or b.engine, b.voice)

    async def _render(self, entry: Entry, wanted: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        b = entry.bulletin
        try:
            r = await loop.run_in_executor(self.render_pool, self._render_sync, b, wanted)
        except TtsError as exc:
            entry.error = str(exc)
            self.ctx.count("render_failed")
            self.log.warning("render_failed", bulletin=b.id, error=str(exc))
        else:
            entry.rendering, entry.error, entry.prepared = r, None, None
            self.log.info("rendered", bulletin=b.id, engine=r.engine, duration_s=round(r.duration_s, 2),
                          took_s=round(r.seconds_taken, 3))
            self._plan(entry)
        self._write_state()

    async def _ready_audio(self, entry: Entry, budget_s: float) -> tuple[Audio, str]:
        """The airing's audio with chimes; if gTTS is still busy, speak offline now rather than wait on the net."""
        task = entry.render_task
        if entry.rendering is None and task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=max(0.05, budget_s))
            except TimeoutError:
                if entry.bulletin.text is not None and "espeak" in self.cfg.tts.engines:
                    self.log.warning("render_late_fallback", bulletin=entry.bulletin.id)
                    await self._render(entry, "espeak")
        if entry.rendering is None:
            raise TtsError(entry.error or "not rendered")
        r = entry.rendering
        if entry.prepared is None or entry.prepared[0] != str(r.path):
            loop = asyncio.get_running_loop()
            audio = await loop.run_in_executor(self.render_pool, self._with_chimes, entry.bulletin, r)
            entry.prepared = (str(r.path), audio)
        return entry.prepared[1], r.engine

    def _chime_audio(self) -> Audio:
        if self._chime is None:
            rate = self.cfg.tts.sample_rate
            self._chime = resample(read_wav(self.cfg.chime_file), rate) if self.cfg.chime_file else chime(rate)
        return self._chime

    def _with_chimes(self, b: Bulletin, r: Rendering) -> Audio:
        speech = read_wav(r.path)
        parts = []
        if b.chime.before:
            parts += [self._chime_audio(), silence(0.4, speech.rate)]
        parts.append(speech)
        if b.chime.after:
            parts += [silence(0.4, speech.rate), self._chime_audio()]
        return concat(parts)

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

    async def _dispatch(self, entry: Entry, airing: Airing, bypass_quiet: bool = False) -> None:
        b = entry.bulletin
        now = time.time()
        late = now - airing.scheduled
        if late > 1.0:
            self.log.info("misfire_play", bulletin=b.id, scheduled=local_iso(airing.scheduled, self.tz),
                          late_s=round(late, 1), grace_s=self.cfg.misfire_grace_s)
        zones = self.cfg.zones_for(b.zones)
        reason = None
        if not bypass_quiet and b.priority != "emergency" and in_quiet_hours(self.cfg.quiet_hours, airing.scheduled,
                                                                             self.tz):
            reason = "quiet hours"
        if reason is None:
            try:
                audio, engine = await self._ready_audio(entry, airing.scheduled - time.time() - 0.3)
            except TtsError as exc:
                for z in zones:
                    await self._record(AsRun(b.id, b.title, z, b.priority, airing.repeat, airing.scheduled, "failed",
                                             f"no audio: {exc}"))
                return
        for z in zones:
            player = self.players.get(z)
            if reason is not None or player is None:
                await self._record(AsRun(b.id, b.title, z, b.priority, airing.repeat, airing.scheduled, "skipped",
                                         reason or f"unknown zone {z!r}"))
                continue
            player.submit(Job(b, airing.repeat, airing.scheduled, audio, engine))

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

    async def _record(self, rec: AsRun) -> None:
        data = rec.record()
        ev = rec.event(self.tz)
        data["event_id"] = ev.id
        self.store.add_asrun(data)
        log = self.log.info if rec.outcome == "played" else self.log.warning
        log("asrun", bulletin=rec.bulletin_id, zone=rec.zone, outcome=rec.outcome, lateness_ms=rec.lateness_ms,
            engine=rec.engine, reason=rec.reason)
        if rec.outcome != "played":
            self.ctx.count(f"airing_{rec.outcome}")
        await self.ctx.emit(ev)

    # ---- loops ---------------------------------------------------------------------------------------------
    async def scheduler(self) -> None:
        while True:
            if self.store.data_version() != self.version:
                self.sync()
            now = time.time()
            for entry in list(self.entries.values()):
                for rec in self._skip_missed(entry, now):
                    await self._record(rec)
            due = sorted((e.next, e) for e in self.entries.values()
                         if e.next is not None and e.next.scheduled - self.cfg.wake_ahead_s <= now)
            for airing, entry in due:
                entry.cursor = airing.scheduled
                self.store.set_cursor(entry.bulletin.id, airing.scheduled)
                self._plan(entry)
                await self._dispatch(entry, airing)
            if due:
                self._write_state()
                continue
            wakes = [e.next.scheduled - self.cfg.wake_ahead_s for e in self.entries.values() if e.next is not None]
            timeout = min([1.0] + [w - time.time() for w in wakes])
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                pass

    async def watch_dir(self) -> None:
        assert self.dir is not None
        loop = asyncio.get_running_loop()
        try:
            self.dir.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.log.error("bulletin_dir_unusable", dir=str(self.dir.path), error=exc.strerror)
            self.ctx.health("degraded", f"bulletin_dir {self.dir.path}: {exc.strerror}")
        while True:
            result = await loop.run_in_executor(self.render_pool, self.dir.scan)
            for path, error in result.invalid:
                self.file_errors[str(path)] = error
                self.ctx.count("bad_bulletin")
                self.log.warning("bulletin_file_invalid", file=str(path), error=error)
            for path, b in result.loaded:
                source = f"file:{path}"
                try:
                    self.check_zones(b, str(path))
                except BulletinError as exc:
                    self.file_errors[str(path)] = str(exc)
                    self.ctx.count("bad_bulletin")
                    self.log.warning("bulletin_file_invalid", file=str(path), error=str(exc))
                    continue
                self.file_errors.pop(str(path), None)
                stored = self.store.get(b.id)
                if stored and stored.bulletin == b and stored.source == source:
                    continue
                self.log.info("bulletin_file_loaded", file=str(path), bulletin=b.id)
                self.accept(b, source)
            for path in result.removed:
                self.file_errors.pop(str(path), None)
                for s in self.store.all():
                    if s.source == f"file:{path}":
                        self.cancel(s.bulletin.id, f"file {path} removed")
            if result.invalid or result.removed:
                self._write_state()
            await asyncio.sleep(1.0)

    async def retry_gtts(self) -> None:
        """Bulletins spoken by espeak because the internet was down get gTTS again once it is back."""
        while True:
            await asyncio.sleep(self.cfg.tts.retry_gtts_s)
            self.synth.prune()
            self.store.prune_asrun(time.time() - self.cfg.asrun_keep_days * 86400)
            if "gtts" not in self.cfg.tts.engines or not self.ctx.uplink_connected:
                continue
            for entry in list(self.entries.values()):
                r = entry.rendering
                if r is not None and r.engine == "espeak" and entry.bulletin.engine != "espeak":
                    await self._render(entry, "gtts")

    def _write_state(self) -> None:
        """What `commune-agent bulletin list` shows about live state (renders, next airings, file errors)."""
        state = {
            "updated": time.time(),
            "bulletins": {bid: {"next": local_iso(e.next.scheduled, self.tz) if e.next else None,
                                "engine": e.rendering.engine if e.rendering else None,
                                "duration_s": round(e.rendering.duration_s, 2) if e.rendering else None,
                                "error": e.error} for bid, e in self.entries.items()},
            "file_errors": self.file_errors,
        }
        path = self.ctx.data_dir / STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    async def run(self) -> None:
        self.ctx.health("starting", "loading schedule")
        self.sync()
        self.ctx.on_command("broadcast", CommandHandler(self).handle)
        tasks = [asyncio.create_task(p.run(), name=f"zone-{n}") for n, p in self.players.items()]
        tasks.append(asyncio.create_task(self.scheduler(), name="scheduler"))
        tasks.append(asyncio.create_task(self.retry_gtts(), name="retry-gtts"))
        if self.dir is not None:
            tasks.append(asyncio.create_task(self.watch_dir(), name="bulletin-dir"))
        self.ctx.health("ok", f"{len(self.entries)} bulletins, {len(self.players)} zones")
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            for e in self.entries.values():
                if e.render_task:
                    e.render_task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.render_pool.shutdown(wait=True, cancel_futures=True)
            self.store.close()


class BroadcastDriver:
    """Radio bulletins: authoring, schedule, Vietnamese speech, zones, as-run log."""

    section: ClassVar[str] = "broadcast"
    Config: ClassVar[type[BroadcastConfig]] = BroadcastConfig

    async def run(self, ctx: Context) -> None:
        await Broadcast(ctx).run()
