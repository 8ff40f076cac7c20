"""One camera's COC commands: `snapshot` (a fresh picture) and `clip` (list clips, upload one in raw pieces)."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from typing import Any

from agent.driver import ClipChunk, CommandError, Context, Event, Priority
from agent.logs import KvLogger
from drivers.camera.clips import ClipRecorder, clip_chunks
from drivers.camera.command_args import CHUNK_BYTES, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES
from drivers.camera.config import CameraConfig
from drivers.camera.online import OnlineState
from drivers.camera.snapshot_delivery import SnapshotDelivery
from drivers.camera.worker_process import WorkerProcess


class CameraCommands:
    """Answers the commands; clip uploads asked for on a metered link wait in `deferred_clips`."""

    def __init__(self, cam: CameraConfig, ctx: Context, log: KvLogger, worker: WorkerProcess, liveness: OnlineState,
                 snapshots: SnapshotDelivery, clips: ClipRecorder) -> None:
        self.cam = cam
        self.ctx = ctx
        self.log = log
        self.worker = worker
        self.liveness = liveness
        self.snapshots = snapshots
        self.clips = clips
        self.deferred_clips: list[tuple[str, int]] = []  # (clip id, offset) asked for while metered

    async def snapshot(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """A fresh picture on snapshot/{camera}/{event_id}; the reply says its size."""
        if not self.worker.running:
            raise CommandError(f"camera {self.cam.name} is not running ({self.liveness.problem or 'starting'})")
        try:
            reply = await self.worker.ask_snapshot(timeout_s)
        except TimeoutError:
            raise CommandError(f"camera {self.cam.name}: no picture within {timeout_s:g} s") from None
        if reply.error or reply.jpeg is None:
            raise CommandError(f"camera {self.cam.name}: {reply.error}")
        event_id = uuid.uuid4().hex
        jpeg = await self.snapshots.send_taken(event_id, reply.jpeg)
        return {"camera": self.cam.name, "event_id": event_id, "bytes": len(jpeg),
                "width": reply.width, "height": reply.height}

    async def clip(self, args: dict[str, Any]) -> dict[str, Any]:
        """`clip` {camera}: list; {camera, id, offset?, chunk_bytes?, force?}: upload it in chunks."""
        clip_id = args.get("id")
        if clip_id is None:
            return {"camera": self.cam.name, "clips": self.clips.list()}
        offset, chunk = args.get("offset", 0), args.get("chunk_bytes", CHUNK_BYTES)
        if not isinstance(clip_id, str) or self.clips.path_of(clip_id) is None:
            raise CommandError(f"camera {self.cam.name}: no clip {clip_id!r} (list them with {{\"camera\": ...}})")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise CommandError("clip 'offset' must be a whole number of bytes >= 0")
        if not isinstance(chunk, int) or isinstance(chunk, bool) or not MIN_CHUNK_BYTES <= chunk <= MAX_CHUNK_BYTES:
            raise CommandError(f"clip 'chunk_bytes' must be a whole number from {MIN_CHUNK_BYTES} to "
                               f"{MAX_CHUNK_BYTES}")
        link = self.ctx.link
        if link.metered and (not args.get("force") or link.defer_bulk):
            if (clip_id, offset) not in self.deferred_clips:  # asked again while waiting: still sent once
                self.deferred_clips.append((clip_id, offset))
            self.log.info("clip_deferred", camera=self.cam.name, clip=clip_id, offset=offset, link=link.name,
                          budget_pct=link.budget_pct)
            detail = (f"data budget of {link.name} at {link.budget_pct:g}%: sent when an unmetered link is back, "
                      "even with force" if link.defer_bulk and link.budget_pct is not None else
                      "metered link: sent when the main link is back (force: true sends now)")
            return {"camera": self.cam.name, "id": clip_id, "deferred": True, "detail": detail}
        return await self.upload_clip(clip_id, offset, chunk)

    async def flush_deferred(self) -> int:
        """Upload the clips asked for while the link was metered, oldest first; how many went."""
        sent = 0
        while self.deferred_clips and not self.ctx.link.metered:
            clip_id, offset = self.deferred_clips.pop(0)
            with contextlib.suppress(CommandError):  # deleted by retention meanwhile
                await self.upload_clip(clip_id, offset, CHUNK_BYTES)
                sent += 1
        return sent

    def piece_bytes(self, chunk: int) -> int:
        """Clip pieces no larger than the COC's broker takes, whatever size was asked for."""
        limit = self.ctx.max_message_bytes
        return max(1, min(chunk, limit)) if limit is not None else chunk

    async def upload_clip(self, clip_id: str, offset: int, chunk: int) -> dict[str, Any]:
        """Raw bulk pieces on clip/{camera}/{id}/{offset} from offset; a broken transfer is resumed by asking again."""
        path = self.clips.path_of(clip_id)
        if path is None:
            raise CommandError(f"camera {self.cam.name}: no clip {clip_id!r}")
        data = path.read_bytes()
        if offset > len(data):
            raise CommandError(f"clip {clip_id} has {len(data)} bytes; offset {offset} is past its end")
        digest = hashlib.sha256(data).hexdigest()
        chunk = self.piece_bytes(chunk)
        pieces = clip_chunks(path, offset, chunk)
        # the description first (small, JSON), then the raw pieces: a COC knows the size and checksum even
        # for an upload that was deferred and started long after the command's result
        await self.ctx.emit(Event("clip_upload", {
            "camera": self.cam.name, "clip": clip_id, "offset": offset, "total": len(data), "sha256": digest,
            "chunk_bytes": chunk, "chunks": len(pieces)}, priority=Priority.BULK))
        for off, piece in pieces:
            await self.ctx.emit(ClipChunk(self.cam.name, clip_id, off, piece))
        self.log.info("clip_uploaded", camera=self.cam.name, clip=clip_id, offset=offset, chunks=len(pieces))
        return {"camera": self.cam.name, "id": clip_id, "bytes": len(data), "sha256": digest, "offset": offset,
                "chunks": len(pieces), "chunk_bytes": chunk}
