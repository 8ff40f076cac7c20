"""The `bulletins` read command: what a COC dashboard shows of the radio, from the scheduler the driver runs."""

from __future__ import annotations

from typing import Any

from agent.paging import page_of, result_budget
from drivers.broadcast.scheduler import Scheduler


class BulletinReads:
    """Active bulletins (paged) with their next airings and speech, and every zone with what it plays now, its
    speakers' state and whether its last played airing was heard."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched

    def _bulletin(self, bid: str) -> dict[str, Any]:
        entry = self.sched.entries[bid]
        b = entry.bulletin
        return {"id": b.id, "title": b.title, "priority": b.priority, "zones": self.sched.cfg.zones_for(b.zones),
                "source": entry.source, "schedule": b.schedule.model_dump(mode="json", exclude_none=True),
                "next_airings": self.sched.upcoming(entry),
                "engine": entry.rendering.engine if entry.rendering else None,
                "duration_s": round(entry.rendering.duration_s, 2) if entry.rendering else None,
                "error": entry.error}

    def _zones(self) -> dict[str, Any]:
        out = {}
        for name, zone in self.sched.cfg.zones.items():
            player = self.sched.players.get(name)
            last = self.sched.store.asrun_find(zone=name, limit=1)[1]
            out[name] = {"type": zone.type, "volume": getattr(zone, "volume", None),
                         "speakers": self.sched.speakers.doc().get(name, []),
                         "unreachable": self.sched.speakers.unreachable(name), "silent": name in self.sched.silent,
                         "playing": player.current.bulletin.id if player and player.current else None,
                         "queued": len(player.queue) if player else 0,
                         "last_airing": {k: last[0][k] for k in ("bulletin_id", "scheduled", "outcome", "reason",
                                                                   "heard", "level_dbfs")}
                         if last else None}
        return out

    async def handle(self, args: dict[str, Any]) -> dict[str, Any]:
        """`bulletins` {page, limit}: one page of bulletins by id, the zones in every page."""
        page = page_of([self._bulletin(bid) for bid in sorted(self.sched.entries)], int(args.get("page", 0)),
                       int(args.get("limit", 50)), result_budget(self.sched.ctx.max_message_bytes) // 2)
        return {**page, "zones": self._zones(), "file_errors": dict(list(self.sched.file_errors.items())[:20])}
