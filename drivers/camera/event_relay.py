"""The worker's events on their way to the COC: each paired with its clip, and ended here if the worker died."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from agent.driver import Context, Event
from agent.logs import KvLogger
from drivers.camera.clips import ClipRecorder
from drivers.camera.config import CameraConfig
from drivers.camera.phases import Phase
from drivers.camera.protocol import WorkerEvent
from drivers.camera.storage import Storage


class EventRelay:
    """Emits event phases; a start claims a clip, an end waits for it; remembers what is open."""

    def __init__(self, cam: CameraConfig, ctx: Context, log: KvLogger, clips: ClipRecorder, storage: Storage) -> None:
        self.cam = cam
        self.ctx = ctx
        self.log = log
        self.clips = clips
        self.storage = storage
        self.open_events: dict[str, tuple[str, dict[str, Any]]] = {}  # event id -> (kind, its latest data)
        self.pending_tasks: set[asyncio.Task[None]] = set()  # ends waiting for their clip

    async def on_event(self, msg: WorkerEvent) -> None:
        phase, eid = msg.phase, msg.event_id
        event_id = (eid if phase in (Phase.START, Phase.ALERT) else f"{eid}-end" if phase is Phase.END
                    else uuid.uuid4().hex)
        data = dict(msg.data)
        kind = msg.kind
        ts = msg.ts or time.time()
        self.log.info("camera_event", camera=self.cam.name, kind=kind, phase=phase, event_id=eid,
                      score=data.get("score"))
        if phase in (Phase.START, Phase.UPDATE):
            self.open_events[eid] = (kind, data)
        elif phase is Phase.END:
            self.open_events.pop(eid, None)
        if phase in (Phase.START, Phase.ALERT):
            clip_id = self.clips.open(eid, float(data.get("started_at") or ts))
            data["clip"] = {"id": clip_id} if clip_id else None
            if clip_id is None and self.cam.clip.enabled:
                data["clip_missing"] = self.storage.paused or "recorder not running"
        if phase in (Phase.END, Phase.ALERT) and eid in self.clips.by_event:
            task = asyncio.create_task(self._emit_with_clip(kind, data, event_id, eid, ts))
            self.pending_tasks.add(task)
            task.add_done_callback(self.pending_tasks.discard)
            if phase is Phase.END:
                return
            data = dict(data, clip={"id": data["clip"]["id"], "pending": True})
        await self.ctx.emit(Event(kind, data, id=event_id, ts=ts))

    async def _emit_with_clip(self, kind: str, data: dict[str, Any], event_id: str, eid: str, ts: float) -> None:
        """An event's end waits for its clip (post-roll, then the remux) so it can name it."""
        info = await self.clips.close(eid, ts)
        if data.get("phase") == Phase.ALERT:
            if info is not None:
                await self.ctx.emit(Event("clip_saved", {"camera": self.cam.name, "event_id": eid, "clip": info}))
            return
        data["clip"] = info
        await self.ctx.emit(Event(kind, data, id=event_id, ts=ts))

    async def end_open(self, reason: str, code: int | None, last_heard_wall: float) -> None:
        """A worker that died (kill -9, codec crash, killed as hung) cannot end its events: end them here, at the
        last moment the worker was heard, so the COC never keeps an event open forever."""
        if not self.open_events:
            return
        ended_at = last_heard_wall or time.time()
        orphans, self.open_events = self.open_events, {}
        for eid, (kind, data) in orphans.items():
            started = float(data.get("started_at") or ended_at)
            end = dict(data, phase=Phase.END, end_reason=reason, ended_at=round(ended_at, 3),
                       duration_s=round(max(0.0, ended_at - started), 2), snapshot=False)
            await self.on_event(WorkerEvent(kind, Phase.END, eid, ended_at, end))
        self.ctx.count("events_ended_by_agent", len(orphans))
        self.log.warning("events_ended", camera=self.cam.name, reason=reason, code=code, count=len(orphans),
                         event_ids=",".join(orphans))

    async def cancel_pending(self) -> None:
        """Shutting down: ends still waiting for a clip are dropped."""
        for t in list(self.pending_tasks):
            t.cancel()
        await asyncio.gather(*self.pending_tasks, return_exceptions=True)
