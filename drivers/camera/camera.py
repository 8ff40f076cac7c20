"""One camera in the agent: keeps its worker (and clip ring) running and wires the worker's messages to the
parts that handle them — online state, events and their clips, snapshots, line counts — plus telemetry and state."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent.backoff import Backoff
from agent.driver import Context, Reading
from drivers.camera.clips import ClipRecorder
from drivers.camera.commands import CameraCommands
from drivers.camera.config import CameraConfig, CamerasConfig
from drivers.camera.detector_supervisor import DetectorSupervisor
from drivers.camera.event_relay import EventRelay
from drivers.camera.line_counts import LineCounts
from drivers.camera.online import OnlineState
from drivers.camera.protocol import (
    DetectorInfo,
    Dispatcher,
    Heartbeat,
    LineCount,
    Reply,
    Status,
    WorkerEvent,
    WorkerSnapshot,
)
from drivers.camera.snapshot_delivery import SnapshotDelivery
from drivers.camera.snapshots import SnapshotStore
from drivers.camera.storage import Storage
from drivers.camera.stream_source import StreamSource
from drivers.camera.worker import WorkerSpec
from drivers.camera.worker_process import WorkerProcess

HEARTBEAT_S = 1.0


class Camera:
    """Owns one camera's parts; `run` restarts the worker with backoff and ends the events a dead one left open."""

    def __init__(self, cam: CameraConfig, cfg: CamerasConfig, ctx: Context, storage: Storage,
                 service: DetectorSupervisor | None = None) -> None:
        self.cam = cam
        # the shared detector serves this camera when it runs the installed YOLO from the service's model dir
        self.service = service if (service is not None and cam.detect.enabled and cam.detect.detector == "yolo"
                                   and cam.detect.model_dir == service.model_dir) else None
        self.cfg = cfg
        self.ctx = ctx
        self.log = log = ctx.log.child(cam.name)
        self.store = SnapshotStore(ctx.data_dir / "snapshots" / cam.name, storage)
        self.clips = ClipRecorder(cam.name, cam.clip, ctx.data_dir / "ring" / cam.name,
                                  ctx.data_dir / "clips" / cam.name, storage, log)
        self.liveness = OnlineState(cam, cfg, ctx, log)
        self.source = StreamSource(cam, cfg, ctx, log, self.liveness)
        self.events = EventRelay(cam, ctx, log, self.clips, storage)
        self.snapshots = SnapshotDelivery(cam, ctx, log, self.store)
        self.counts = LineCounts(cam)
        self.detector: str | None = None
        self.detector_warning: str | None = None
        self.dispatcher = Dispatcher({
            Heartbeat: self._on_heartbeat,
            Status: self.liveness.on_status,
            WorkerEvent: self.events.on_event,
            WorkerSnapshot: self.snapshots.on_snapshot,
            LineCount: self.counts.on_count,
            DetectorInfo: self._on_detector,
            Reply: self._on_reply,
        }, ctx.count, log)
        self.worker = WorkerProcess(cam.name, self.dispatcher, log)
        self.commands = CameraCommands(cam, ctx, log, self.worker, self.liveness, self.snapshots, self.clips)

    async def run(self) -> None:
        """Keep a worker (and, with clips on, the ring recorder) running for this camera until cancelled."""
        backoff = Backoff(1.0, 30.0, jitter=0.2)
        recorder: asyncio.Task[None] | None = None
        try:
            while True:
                url = await self.source.resolve_url()
                if recorder is None and self.cam.clip.enabled:
                    recorder = asyncio.create_task(self._record(self.source.clip_url(url)),
                                                   name=f"clips-{self.cam.name}")
                await self._worker_round(url, backoff)
        finally:
            if recorder is not None:
                recorder.cancel()
                await asyncio.gather(recorder, return_exceptions=True)
            await self.events.cancel_pending()

    async def _record(self, url: str) -> None:
        """A second client on a camera that never answered would only add load and log noise: wait for it."""
        await self.liveness.stream_seen.wait()
        await self.clips.run(url)

    async def _worker_round(self, url: str, backoff: Backoff) -> None:
        spec = WorkerSpec(self.cam, url, str(self.ctx.timezone), self.cfg.open_timeout_s, self.cfg.read_timeout_s,
                          self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, HEARTBEAT_S)
        if self.service is not None:
            await self.service.checked.wait()
        if self.service is not None and self.service.usable:
            d = self.cfg.detector
            spec.detector_socket = self.service.socket_name
            spec.detector_size, spec.detector_crops, spec.detector_timeout_s = (d.input_size, d.max_crops,
                                                                                d.answer_timeout_s)
        if not self.liveness.problem:
            self.liveness.problem = "stream: not connected yet"  # what camera_offline says if the first open is pending
        t0 = time.monotonic()
        code = await self.worker.run(spec)
        if time.monotonic() - t0 > 60:
            backoff.reset()
        self.ctx.count("worker_restarts")
        self.log.warning("worker_exited", camera=self.cam.name, code=code)
        await self.events.end_open("worker_died", code, self.dispatcher.last_heard_wall)
        await asyncio.sleep(backoff.next())

    # ---- handlers the worker process and the online state both need, or that only set a field -----------------
    async def _on_heartbeat(self, msg: Heartbeat) -> None:
        await self.worker.on_heartbeat(msg)
        await self.liveness.on_heartbeat(msg)

    async def _on_reply(self, msg: Reply) -> None:
        await self.worker.on_reply(msg)

    async def _on_detector(self, msg: DetectorInfo) -> None:
        self.detector, self.detector_warning = msg.name, msg.warning
        if self.detector_warning:
            self.log.warning("detector_fallback", camera=self.cam.name, reason=self.detector_warning)
            self.ctx.count("detector_fallback")
        else:
            self.log.info("detector_loaded", camera=self.cam.name, detector=self.detector)

    # ---- what the driver asks of every camera -------------------------------------------------------------------
    async def flush_pending(self) -> int:
        """Send clips and snapshots held back while the link was metered, oldest first."""
        return await self.commands.flush_deferred() + await self.snapshots.flush_pending()

    def readings(self) -> list[Reading]:
        tags = {"camera": self.cam.name}
        h = self.liveness.heartbeat
        age = h.get("last_frame_age_s")
        out = [
            Reading("camera_online", bool(self.liveness.online), tags=tags),
            Reading("input_fps", h.get("input_fps", 0.0), "fps", tags=tags),
            Reading("analysed_fps", h.get("analysed_fps", 0.0), "fps", tags=tags),
            Reading("last_frame_age_s", age if age is not None else None, "s", tags=tags),
            Reading("decode_errors", int(h.get("decode_errors", 0)) + self.worker.ffmpeg_errors, tags=tags),
            Reading("reconnects", int(h.get("reconnects", 0)), tags=tags),
            Reading("snapshot_store_bytes", self.store.total_bytes(), "B", tags=tags),
            Reading("recording", self.clips.recording, tags=tags),
            Reading("clip_failures", self.clips.failures, tags=tags),
            Reading("clip_recorder_restarts", self.clips.restarts, tags=tags),
            Reading("detector_calls", int(h.get("detector_calls", 0)), tags=tags),
            Reading("analysis_fps_target", h.get("analysis_fps", self.cam.detect_fps), "fps", tags=tags),
        ]
        if self.service is not None:
            out.append(Reading("detector_shed", int(h.get("detector_shed", 0)), tags=tags))
            if h.get("detect_p95_ms") is not None:
                out.append(Reading("detect_p95_ms", h["detect_p95_ms"], "ms", tags=tags))
        if self.source.clock_skew_s is not None:
            out.append(Reading("clock_skew_s", self.source.clock_skew_s, "s", tags=tags))
        return out

    def state(self) -> dict[str, Any]:
        """This camera's entry in the state file."""
        proc = self.worker.proc
        return {"online": self.liveness.online, "problem": self.liveness.problem, "pid": proc.pid if proc else None,
                "clock_skew_s": self.source.clock_skew_s, "detector": self.detector,
                "detector_warning": self.detector_warning, "recording": self.clips.recording,
                "clips": len(self.clips.list()), **self.liveness.heartbeat}
