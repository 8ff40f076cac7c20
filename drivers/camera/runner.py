"""One camera seen from the agent: its worker process, its online/offline state and its snapshots."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from agent.backoff import Backoff
from agent.children import stop_child
from agent.driver import ClipChunk, CommandError, Context, Event, Priority, Reading, Snapshot
from agent.section import read_secret
from drivers.camera.clips import ClipRecorder, clip_chunks
from drivers.camera.config import CameraConfig, CamerasConfig
from drivers.camera.onvif_client import (
    OnvifAuthError,
    OnvifClient,
    OnvifError,
    choose_profile,
    redact,
    with_credentials,
)
from drivers.camera.snapshots import SnapshotStore, reencode_jpeg
from drivers.camera.storage import Storage
from drivers.camera.worker import Job

REPO_ROOT = str(Path(__file__).resolve().parents[2])
LINE_LIMIT = 32 * 1024 * 1024  # a base64 snapshot is one line
HEARTBEAT_S = 1.0
HUNG_AFTER_S = 15.0  # no heartbeat this long = the worker is wedged: kill it
CHUNK_BYTES = 256 * 1024  # clip upload piece: one raw MQTT message each
MAX_CHUNK_BYTES = 4 * 1024 * 1024


class CameraRunner:
    """Starts and restarts one worker, turns its messages into emits, keeps the debounced online state."""

    def __init__(self, cam: CameraConfig, cfg: CamerasConfig, ctx: Context, storage: Storage) -> None:
        self.cam = cam
        self.cfg = cfg
        self.ctx = ctx
        self.log = ctx.log.child(cam.name)
        self.storage = storage
        self.store = SnapshotStore(ctx.data_dir / "snapshots" / cam.name, storage)
        self.clips = ClipRecorder(cam.name, cam.clip, ctx.data_dir / "ring" / cam.name,
                                  ctx.data_dir / "clips" / cam.name, storage, self.log)
        self.pending_tasks: set[asyncio.Task[None]] = set()
        self.deferred_clips: list[tuple[str, int]] = []  # (clip id, offset) asked for while metered
        self.counts: dict[tuple[str, str, str], int] = {}
        self.next_counts = time.monotonic() + cam.traffic.count_interval_s
        self.detector: str | None = None
        self.detector_warning: str | None = None
        self.stream_seen = asyncio.Event()  # the recorder starts once the worker has reached the camera
        self.proc: asyncio.subprocess.Process | None = None
        self.started = time.monotonic()
        self.first_heartbeat: float | None = None
        self.online: bool | None = None  # None until the first decision
        self.online_reported_offline = False  # camera_online only follows a camera_offline
        self.last_frame = 0.0  # monotonic, derived from heartbeats
        self.flowing_since: float | None = None
        self.last_heartbeat = 0.0
        self.health: dict[str, Any] = {}
        self.clock_skew_s: float | None = None
        self.skew_reported = False
        self.problem = ""
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.ffmpeg_errors = 0
        self.open_events: dict[str, tuple[str, dict[str, Any]]] = {}  # event id -> (kind, its latest data)
        self.last_heard_wall = 0.0  # wall time of the worker's latest message: when its open events were last alive

    # ---- source -------------------------------------------------------------------------------
    def _password(self) -> str | None:
        return read_secret(self.cam.password_file)

    def _onvif_resolve(self) -> tuple[str, float]:
        assert self.cam.onvif is not None
        o = self.cam.onvif
        client = OnvifClient(o.host, o.port, self.cam.username, self._password(), o.timeout_s)
        profile = choose_profile(client.profiles(), o.profile)
        uri = client.stream_uri(profile.token)
        skew = client.clock_skew_s()
        return uri, skew

    async def resolve_url(self) -> str:
        """The RTSP URL with credentials; for ONVIF cameras ask the camera, retrying with backoff."""
        if self.cam.rtsp_url:
            return with_credentials(self.cam.rtsp_url, self.cam.username, self._password())
        backoff = Backoff(self.cfg.reconnect_min_s, max(30.0, self.cfg.reconnect_max_s), jitter=0.2)
        while True:
            try:
                uri, skew = await asyncio.to_thread(self._onvif_resolve)
            except OnvifAuthError as exc:
                self.problem = str(exc)
                self.log.error("onvif_auth_failed", camera=self.cam.name, error=str(exc))
                self.ctx.count("onvif_auth_failed")
                await asyncio.sleep(max(60.0, backoff.next()))
                continue
            except OnvifError as exc:
                self.problem = str(exc)
                self.log.warning("onvif_failed", camera=self.cam.name, error=str(exc))
                await asyncio.sleep(backoff.next())
                continue
            await self.note_clock_skew(skew)
            self.log.info("onvif_stream", camera=self.cam.name, uri=redact(uri))
            return with_credentials(uri, self.cam.username, self._password())

    async def note_clock_skew(self, skew: float) -> None:
        """Telemetry always; an event when it crosses the limit (ONVIF auth fails on a skewed clock)."""
        self.clock_skew_s = round(skew, 1)
        too_far = abs(skew) > self.cfg.clock_skew_max_s
        if too_far and not self.skew_reported:
            self.skew_reported = True
            self.log.warning("camera_clock_skew", camera=self.cam.name, skew_s=skew)
            await self.ctx.emit(Event("camera_clock_skew", {"camera": self.cam.name, "skew_s": self.clock_skew_s,
                                                             "max_s": self.cfg.clock_skew_max_s}, severity="warning"))
        elif not too_far:
            self.skew_reported = False

    async def check_clock(self) -> None:
        if self.cam.onvif is None:
            return
        o = self.cam.onvif

        def ask() -> float:
            return OnvifClient(o.host, o.port, self.cam.username, self._password(), o.timeout_s).clock_skew_s()

        try:
            await self.note_clock_skew(await asyncio.to_thread(ask))
        except OnvifError as exc:
            self.log.warning("onvif_clock_check_failed", camera=self.cam.name, error=str(exc))

    # ---- worker process -----------------------------------------------------------------------
    async def run(self) -> None:
        """Keep a worker (and, with clips on, the ring recorder) running for this camera until cancelled."""
        backoff = Backoff(1.0, 30.0, jitter=0.2)
        recorder: asyncio.Task[None] | None = None
        try:
            while True:
                url = await self.resolve_url()
                if recorder is None and self.cam.clip.enabled:
                    clip_url = (with_credentials(self.cam.clip.rtsp_url, self.cam.username, self._password())
                                if self.cam.clip.rtsp_url else url)
                    recorder = asyncio.create_task(self._record(clip_url), name=f"clips-{self.cam.name}")
                await self._worker_round(url, backoff)
        finally:
            if recorder is not None:
                recorder.cancel()
                await asyncio.gather(recorder, return_exceptions=True)
            for t in list(self.pending_tasks):
                t.cancel()
            await asyncio.gather(*self.pending_tasks, return_exceptions=True)

    async def _record(self, url: str) -> None:
        """A second client on a camera that never answered would only add load and log noise: wait for it."""
        await self.stream_seen.wait()
        await self.clips.run(url)

    async def _worker_round(self, url: str, backoff: Backoff) -> None:
        job = Job(self.cam, url, str(self.ctx.timezone), self.cfg.open_timeout_s, self.cfg.read_timeout_s,
                  self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, HEARTBEAT_S)
        t0 = time.monotonic()
        code = await self._run_worker(job)
        if time.monotonic() - t0 > 60:
            backoff.reset()
        self.ctx.count("worker_restarts")
        self.log.warning("worker_exited", camera=self.cam.name, code=code)
        await self.end_open_events("worker_died", code)
        await asyncio.sleep(backoff.next())

    async def end_open_events(self, reason: str, code: int | None) -> None:
        """A worker that died (kill -9, codec crash, killed as hung) cannot end its events: end them here, at the
        last moment the worker was heard, so the COC never keeps an event open forever."""
        if not self.open_events:
            return
        ended_at = self.last_heard_wall or time.time()
        orphans, self.open_events = self.open_events, {}
        for eid, (kind, data) in orphans.items():
            started = float(data.get("started_at") or ended_at)
            end = dict(data, phase="end", end_reason=reason, ended_at=round(ended_at, 3),
                       duration_s=round(max(0.0, ended_at - started), 2), snapshot=False)
            await self._on_event({"t": "event", "kind": kind, "phase": "end", "event_id": eid, "ts": ended_at,
                                  "data": end})
        self.ctx.count("events_ended_by_agent", len(orphans))
        self.log.warning("events_ended", camera=self.cam.name, reason=reason, code=code, count=len(orphans),
                         event_ids=",".join(orphans))

    async def _run_worker(self, job: Job) -> int | None:
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "drivers.camera.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, limit=LINE_LIMIT)
        self.last_heartbeat = time.monotonic()
        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(job.to_json().encode() + b"\n")
        await proc.stdin.drain()
        self.log.info("worker_started", camera=self.cam.name, pid=proc.pid)
        if not self.problem:
            self.problem = "stream: not connected yet"  # what camera_offline says if the first open is still pending
        tasks = [asyncio.create_task(self._read_stdout(proc.stdout)),
                 asyncio.create_task(self._read_stderr(proc.stderr)), asyncio.create_task(self._watch_hung(proc))]
        try:
            await tasks[0]
            return await proc.wait()
        finally:
            for t in tasks:
                t.cancel()
            await self._stop(proc)
            self.proc = None
            for fut in self.replies.values():
                if not fut.done():
                    fut.set_exception(CommandError(f"camera {self.cam.name}: worker restarted"))
            self.replies.clear()

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()  # a worker reading its stdin ends by itself on EOF
        await stop_child(proc)

    async def _watch_hung(self, proc: asyncio.subprocess.Process) -> None:
        while proc.returncode is None:
            await asyncio.sleep(1.0)
            if time.monotonic() - self.last_heartbeat > HUNG_AFTER_S:
                self.log.error("worker_hung", camera=self.cam.name, pid=proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        """FFmpeg and Python write here; keep the log short and count decode complaints."""
        while line := await stream.readline():
            text = line.decode(errors="replace").strip()
            if "error while decoding" in text or "corrupt" in text.lower():
                self.ffmpeg_errors += 1
            elif text:
                self.log.debug("worker_stderr", camera=self.cam.name, line=text)

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        """Handle the worker's messages until EOF."""
        while line := await stream.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                self.ctx.count("bad_worker_message")
                continue
            self.last_heard_wall = time.time()
            kind = msg.get("t")
            if kind == "health":
                self._on_health(msg)
            elif kind == "status":
                self._on_status(msg)
            elif kind == "event":
                await self._on_event(msg)
            elif kind == "snapshot":
                await self._on_snapshot(msg)
            elif kind == "count":
                self._on_count(msg)
            elif kind == "detector":
                self._on_detector(msg)
            elif kind == "reply":
                fut = self.replies.pop(str(msg.get("request")), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)

    def _on_health(self, msg: dict[str, Any]) -> None:
        now = time.monotonic()
        self.last_heartbeat = now
        if self.first_heartbeat is None:
            self.first_heartbeat = now
        self.health = msg
        age = msg.get("last_frame_age_s")
        if age is not None:
            self.last_frame = now - float(age)

    def _on_status(self, msg: dict[str, Any]) -> None:
        """Log changes only: a dead camera retries every few seconds and must not flood the journal."""
        if msg.get("connected"):
            self.stream_seen.set()
            self.problem = ""
            self.log.info("stream_connected", camera=self.cam.name, width=msg.get("width"), height=msg.get("height"))
        else:
            problem = f"stream: {msg.get('detail')}"
            if problem != self.problem:
                self.log.warning("stream_down", camera=self.cam.name, detail=msg.get("detail"))
            self.problem = problem

    def _on_detector(self, msg: dict[str, Any]) -> None:
        self.detector = str(msg.get("name")) if msg.get("name") else None
        self.detector_warning = str(msg["warning"]) if msg.get("warning") else None
        if self.detector_warning:
            self.log.warning("detector_fallback", camera=self.cam.name, reason=self.detector_warning)
            self.ctx.count("detector_fallback")
        else:
            self.log.info("detector_loaded", camera=self.cam.name, detector=self.detector)

    def _on_count(self, msg: dict[str, Any]) -> None:
        key = (str(msg.get("line")), str(msg.get("class")), str(msg.get("direction")))
        self.counts[key] = self.counts.get(key, 0) + 1

    def count_readings(self, now: float) -> list[Reading]:
        """traffic_count per line, class and direction for the interval just ended (zeros too)."""
        if not self.cam.traffic.lines or now < self.next_counts:
            return []
        from drivers.camera.traffic import line_keys

        self.next_counts = now + self.cam.traffic.count_interval_s
        counts, self.counts = self.counts, {}
        interval = self.cam.traffic.count_interval_s
        return [Reading("traffic_count", counts.get(k, 0), tags={"camera": self.cam.name, "line": k[0], "class": k[1],
                                                                 "direction": k[2], "interval_s": f"{interval:g}"})
                for k in line_keys(self.cam.traffic.lines)]

    async def _on_event(self, msg: dict[str, Any]) -> None:
        phase, eid = msg.get("phase"), str(msg.get("event_id"))
        event_id = eid if phase in ("start", "alert") else f"{eid}-end" if phase == "end" else uuid.uuid4().hex
        data = dict(msg.get("data") or {})
        kind = str(msg.get("kind"))
        ts = float(msg.get("ts") or time.time())
        self.log.info("camera_event", camera=self.cam.name, kind=kind, phase=phase, event_id=eid,
                      score=data.get("score"))
        if phase in ("start", "update"):
            self.open_events[eid] = (kind, data)
        elif phase == "end":
            self.open_events.pop(eid, None)
        if phase in ("start", "alert"):
            clip_id = self.clips.open(eid, float(data.get("started_at") or ts))
            data["clip"] = {"id": clip_id} if clip_id else None
            if clip_id is None and self.cam.clip.enabled:
                data["clip_missing"] = self.storage.paused or "recorder not running"
        if phase in ("end", "alert") and eid in self.clips.by_event:
            task = asyncio.create_task(self._emit_with_clip(kind, data, event_id, eid, ts))
            self.pending_tasks.add(task)
            task.add_done_callback(self.pending_tasks.discard)
            if phase == "end":
                return
            data = dict(data, clip={"id": data["clip"]["id"], "pending": True})
        await self.ctx.emit(Event(kind, data, id=event_id, ts=ts))

    async def _emit_with_clip(self, kind: str, data: dict[str, Any], event_id: str, eid: str, ts: float) -> None:
        """An event's end waits for its clip (post-roll, then the remux) so it can name it."""
        info = await self.clips.close(eid, ts)
        if data.get("phase") == "alert":
            if info is not None:
                await self.ctx.emit(Event("clip_saved", {"camera": self.cam.name, "event_id": eid, "clip": info}))
            return
        data["clip"] = info
        await self.ctx.emit(Event(kind, data, id=event_id, ts=ts))

    async def _on_snapshot(self, msg: dict[str, Any]) -> None:
        try:
            jpeg = base64.b64decode(msg["jpeg"])
            event_id = str(msg["event_id"])
        except (KeyError, ValueError):
            self.ctx.count("bad_worker_message")
            return
        metered = self.ctx.link.metered
        path = self.store.put(event_id, jpeg, pending=metered)
        if path is None:
            self.ctx.count("snapshot_not_stored")
        if not metered:
            await self.ctx.emit(Snapshot(self.cam.name, event_id, await self.fit_snapshot(jpeg)))
            if path is not None:
                self.store.mark_sent(path)
        elif msg.get("kind") in ("person", "vehicle_stopped"):  # security and black-spot alerts go at once
            snap = self.cam.snapshot
            small = reencode_jpeg(jpeg, snap.metered_width, snap.metered_quality)
            await self.ctx.emit(Snapshot(self.cam.name, event_id, await self.fit_snapshot(small)))
            self.log.info("snapshot_small_now", camera=self.cam.name, event_id=event_id, bytes=len(small))
        else:
            self.log.info("snapshot_deferred", camera=self.cam.name, event_id=event_id, bytes=len(jpeg))

    async def flush_pending(self) -> int:
        """Send snapshots and clips held back while the link was metered, oldest first."""
        sent = 0
        while self.deferred_clips and not self.ctx.link.metered:
            clip_id, offset = self.deferred_clips.pop(0)
            with contextlib.suppress(CommandError):  # deleted by retention meanwhile
                await self.upload_clip(clip_id, offset, CHUNK_BYTES)
                sent += 1
        for event_id, path in self.store.pending():
            if self.ctx.link.metered:
                break
            try:
                jpeg = path.read_bytes()
            except FileNotFoundError:  # trimmed meanwhile
                continue
            jpeg = await self.fit_snapshot(jpeg)
            await self.ctx.emit(Snapshot(self.cam.name, event_id, jpeg, priority=Priority.BULK))
            self.store.mark_sent(path)
            sent += 1
        return sent

    async def fit_snapshot(self, jpeg: bytes) -> bytes:
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

    def piece_bytes(self, chunk: int) -> int:
        """Clip pieces no larger than the COC's broker takes, whatever size was asked for."""
        limit = self.ctx.max_message_bytes
        return max(1, min(chunk, limit)) if limit is not None else chunk

    # ---- commands and state -------------------------------------------------------------------
    async def snapshot_now(self, timeout_s: float = 5.0) -> dict[str, Any]:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise CommandError(f"camera {self.cam.name} is not running ({self.problem or 'starting'})")
        request = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[request] = fut
        proc.stdin.write(json.dumps({"cmd": "snapshot", "request": request}).encode() + b"\n")
        await proc.stdin.drain()
        try:
            async with asyncio.timeout(timeout_s):
                reply = await fut
        except TimeoutError:
            self.replies.pop(request, None)
            raise CommandError(f"camera {self.cam.name}: no picture within {timeout_s:g} s") from None
        if reply.get("error"):
            raise CommandError(f"camera {self.cam.name}: {reply['error']}")
        jpeg = base64.b64decode(reply["jpeg"])
        if self.ctx.link.metered:
            jpeg = reencode_jpeg(jpeg, self.cam.snapshot.metered_width, self.cam.snapshot.metered_quality)
        event_id = uuid.uuid4().hex
        self.store.put(event_id, jpeg)
        jpeg = await self.fit_snapshot(jpeg)
        await self.ctx.emit(Snapshot(self.cam.name, event_id, jpeg))
        return {"camera": self.cam.name, "event_id": event_id, "bytes": len(jpeg),
                "width": reply.get("width"), "height": reply.get("height")}

    async def clip_command(self, args: dict[str, Any]) -> dict[str, Any]:
        """`clip` {camera}: list; {camera, id, offset?, chunk_bytes?, force?}: upload it in chunks."""
        clip_id = args.get("id")
        if clip_id is None:
            return {"camera": self.cam.name, "clips": self.clips.list()}
        offset, chunk = args.get("offset", 0), args.get("chunk_bytes", CHUNK_BYTES)
        if not isinstance(clip_id, str) or self.clips.path_of(clip_id) is None:
            raise CommandError(f"camera {self.cam.name}: no clip {clip_id!r} (list them with {{\"camera\": ...}})")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise CommandError("clip 'offset' must be a whole number of bytes >= 0")
        if not isinstance(chunk, int) or isinstance(chunk, bool) or not 1024 <= chunk <= MAX_CHUNK_BYTES:
            raise CommandError(f"clip 'chunk_bytes' must be a whole number from 1024 to {MAX_CHUNK_BYTES}")
        if self.ctx.link.metered and not args.get("force"):
            self.deferred_clips.append((clip_id, offset))
            self.log.info("clip_deferred", camera=self.cam.name, clip=clip_id, offset=offset)
            return {"camera": self.cam.name, "id": clip_id, "deferred": True,
                    "detail": "metered link: sent when the main link is back (force: true sends now)"}
        return await self.upload_clip(clip_id, offset, chunk)

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

    def frame_age(self, now: float) -> float:
        """Since the last frame; before the first one, since the worker first spoke (its start-up on a busy
        box is not the camera's fault), or since this runner started if it never did."""
        return now - (self.last_frame or self.first_heartbeat or self.started)

    def decide_online(self, now: float) -> bool | None:
        """Debounced state change: True/False when it flips, None when nothing changed."""
        age = self.frame_age(now)
        if age <= max(2.0, 2.0 / self.cam.detect_fps):
            if self.flowing_since is None:
                self.flowing_since = now
            if self.online is not True and now - self.flowing_since >= self.cfg.online_after_s:
                self.online = True
                return True
        else:
            self.flowing_since = None
            if self.online is not False and age > self.cfg.offline_after_s:
                self.online = False
                return False
        return None

    def readings(self) -> list[Reading]:
        tags = {"camera": self.cam.name}
        h = self.health
        age = h.get("last_frame_age_s")
        out = [
            Reading("camera_online", bool(self.online), tags=tags),
            Reading("input_fps", h.get("input_fps", 0.0), "fps", tags=tags),
            Reading("analysed_fps", h.get("analysed_fps", 0.0), "fps", tags=tags),
            Reading("last_frame_age_s", age if age is not None else None, "s", tags=tags),
            Reading("decode_errors", int(h.get("decode_errors", 0)) + self.ffmpeg_errors, tags=tags),
            Reading("reconnects", int(h.get("reconnects", 0)), tags=tags),
            Reading("snapshot_store_bytes", self.store.total_bytes(), "B", tags=tags),
            Reading("recording", self.clips.recording, tags=tags),
            Reading("clip_failures", self.clips.failures, tags=tags),
            Reading("clip_recorder_restarts", self.clips.restarts, tags=tags),
            Reading("detector_calls", int(h.get("detector_calls", 0)), tags=tags),
        ]
        if self.clock_skew_s is not None:
            out.append(Reading("clock_skew_s", self.clock_skew_s, "s", tags=tags))
        return out

    def state(self) -> dict[str, Any]:
        return {"online": self.online, "problem": self.problem, "pid": self.proc.pid if self.proc else None,
                "clock_skew_s": self.clock_skew_s, "detector": self.detector, "detector_warning": self.detector_warning,
                "recording": self.clips.recording, "clips": len(self.clips.list()),
                **{k: v for k, v in self.health.items() if k != "t"}}
