"""Getting one camera's pictures to the COC: stored first, sent now or held while the link is metered, sized to fit."""

from __future__ import annotations

import asyncio

from agent.driver import Context, Priority, Snapshot
from agent.logs import KvLogger
from drivers.camera.config import CameraConfig
from drivers.camera.protocol import WorkerSnapshot
from drivers.camera.snapshots import SnapshotStore, reencode_jpeg

AT_ONCE_KINDS = ("person", "vehicle_stopped")  # security and black-spot alerts go even on a metered link


class SnapshotDelivery:
    """The event snapshots the worker sends and the pictures the `snapshot` command takes."""

    def __init__(self, cam: CameraConfig, ctx: Context, log: KvLogger, store: SnapshotStore) -> None:
        self.cam = cam
        self.ctx = ctx
        self.log = log
        self.store = store

    async def on_snapshot(self, msg: WorkerSnapshot) -> None:
        jpeg, event_id = msg.jpeg, msg.event_id
        metered = self.ctx.link.metered
        path = self.store.put(event_id, jpeg, pending=metered)
        if path is None:
            self.ctx.count("snapshot_not_stored")
        if not metered:
            await self.ctx.emit(Snapshot(self.cam.name, event_id, await self.fit(jpeg)))
            if path is not None:
                self.store.mark_sent(path)
        elif msg.kind in AT_ONCE_KINDS:
            snap = self.cam.snapshot
            small = reencode_jpeg(jpeg, snap.metered_width, snap.metered_quality)
            await self.ctx.emit(Snapshot(self.cam.name, event_id, await self.fit(small)))
            self.log.info("snapshot_small_now", camera=self.cam.name, event_id=event_id, bytes=len(small))
        else:
            self.log.info("snapshot_deferred", camera=self.cam.name, event_id=event_id, bytes=len(jpeg))

    async def send_taken(self, event_id: str, jpeg: bytes) -> bytes:
        """A picture taken on command: stored, made small on a metered link, sent now; what was sent."""
        if self.ctx.link.metered:
            jpeg = reencode_jpeg(jpeg, self.cam.snapshot.metered_width, self.cam.snapshot.metered_quality)
        self.store.put(event_id, jpeg)
        jpeg = await self.fit(jpeg)
        await self.ctx.emit(Snapshot(self.cam.name, event_id, jpeg))
        return jpeg

    async def flush_pending(self) -> int:
        """Send the snapshots held back while the link was metered, oldest first; how many went."""
        sent = 0
        for event_id, path in self.store.pending():
            if self.ctx.link.metered:
                break
            try:
                jpeg = path.read_bytes()
            except FileNotFoundError:  # trimmed meanwhile
                continue
            jpeg = await self.fit(jpeg)
            await self.ctx.emit(Snapshot(self.cam.name, event_id, jpeg, priority=Priority.BULK))
            self.store.mark_sent(path)
            sent += 1
        return sent

    async def fit(self, jpeg: bytes) -> bytes:
        """A snapshot the COC's broker takes: above its limit, re-encoded smaller (lower quality, then half the
        width each time) until it fits; what cannot fit even at 160 px goes as it is and is set aside there."""
        limit = self.ctx.max_message_bytes
        if limit is None or len(jpeg) <= limit:
            return jpeg
        out, width = jpeg, self.cam.snapshot.width
        while len(out) > limit and width >= 160:
            out = await asyncio.to_thread(reencode_jpeg, jpeg, width, 50)
            width //= 2
        self.ctx.count("snapshot_shrunk")
        self.log.info("snapshot_shrunk", camera=self.cam.name, bytes=len(jpeg), now=len(out), limit=limit)
        return out
