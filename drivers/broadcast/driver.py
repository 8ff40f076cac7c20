"""BroadcastDriver: wires the store, airing audio, zone players, scheduler, bulletin folder and `broadcast` command."""

from __future__ import annotations

import asyncio

from agent.driver import Context
from agent.statefile import read_json
from drivers.broadcast.airing_audio import AiringAudio
from drivers.broadcast.commands import BroadcastCommand
from drivers.broadcast.config import BroadcastConfig, HttpZone, PagingZone, RtpZone, SoundcardZone
from drivers.broadcast.lexicon import FILE as LEXICON_FILE
from drivers.broadcast.lexicon import Lexicon
from drivers.broadcast.outputs import Output
from drivers.broadcast.outputs.httppush import HttpPushOutput
from drivers.broadcast.outputs.paging import PagingOutput
from drivers.broadcast.outputs.rtp import RtpOutput
from drivers.broadcast.outputs.soundcard import SoundcardOutput
from drivers.broadcast.player import ZonePlayer
from drivers.broadcast.reads import BulletinReads
from drivers.broadcast.scheduler import Scheduler
from drivers.broadcast.store import DB_FILE, Store
from drivers.broadcast.watcher import BulletinDir, watch_dir


def make_output(zone: SoundcardZone | RtpZone | PagingZone | HttpZone) -> Output:
    if isinstance(zone, SoundcardZone):
        return SoundcardOutput(zone)
    if isinstance(zone, RtpZone):
        return RtpOutput(zone)
    if isinstance(zone, PagingZone):
        return PagingOutput(zone)
    return HttpPushOutput(zone)


class BroadcastDriver:
    """Radio bulletins: authoring, schedule, Vietnamese speech, zones, as-run log."""

    async def run(self, ctx: Context) -> None:
        cfg: BroadcastConfig = ctx.config
        ctx.health("starting", "loading schedule")
        store = Store(ctx.data_dir / DB_FILE)
        airing_audio = AiringAudio(cfg, ctx.data_dir / "tts-cache", Lexicon(ctx.data_dir / LEXICON_FILE))
        players: dict[str, ZonePlayer] = {}
        sched = Scheduler(ctx, store, airing_audio, players)
        players.update({name: ZonePlayer(name, make_output(z), z.volume, sched.record, cfg.emergency_interrupt,
                                         ctx.log.child(name), cfg.realtime_priority, z.monitor,
                                         lambda zone=name: sched.speakers.unreachable(zone),  # type: ignore[misc]
                                         sched.on_air)
                        for name, z in cfg.zones.items()})
        tasks: list[asyncio.Task[None]] = []
        try:
            sched.on_air.end_left_over(read_json(sched.state_path))
            sched.sync()
            ctx.on_command("broadcast", BroadcastCommand(sched).handle)
            ctx.on_command("bulletins", BulletinReads(sched).handle)
            tasks = [asyncio.create_task(p.run(), name=f"zone-{n}") for n, p in players.items()]
            tasks.append(asyncio.create_task(sched.run(), name="scheduler"))
            tasks.append(asyncio.create_task(sched.retry_gtts(), name="retry-gtts"))
            if sched.speakers.zones:
                tasks.append(asyncio.create_task(sched.speakers.run(), name="speaker-checks"))
            if cfg.bulletin_dir:
                bdir = BulletinDir(cfg.bulletin_dir, cfg.tts.max_chars)
                tasks.append(asyncio.create_task(watch_dir(bdir, sched), name="bulletin-dir"))
            sched.refresh_health()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            sched.stop_renders()
            await asyncio.gather(*tasks, return_exceptions=True)
            airing_audio.close()
            store.close()
