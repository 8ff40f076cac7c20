"""Event clips cut from the camera's own stream without re-encoding.

An ffmpeg child copies the camera's H.264/H.265 into a ring of short MPEG-TS segments (`-c copy -f
segment`, cut at key frames), so a clip costs almost no CPU. An event claims the ring from pre-roll
before its start; when the event (and any other event sharing the clip) has ended and post-roll has
been recorded, the segments are remuxed (still `-c copy`) into one MP4 next to a JSON description.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.backoff import Backoff
from agent.children import ChildTimeout, run_child, stop_child
from agent.logs import KvLogger
from agent.statefile import read_json, write_json_logged
from drivers.camera.config import ClipConfig
from drivers.camera.onvif_client import redact
from drivers.camera.storage import Storage

SEGMENT = re.compile(r"^seg(\d{8})\.ts$")
CLIP_ID = re.compile(r"^[0-9a-f]{16}$")
FINISH_GRACE_S = 8.0  # after post-roll: how long to wait for the last segment before cutting what there is
REMUX_BASE_S = 30.0  # a remux copies the segments: allowed this long plus one second per REMUX_MIN_BYTES_PER_S
REMUX_MIN_BYTES_PER_S = 2_000_000  # slower than this even on an SD card, ffmpeg is stuck, not busy
PROBE_TIMEOUT_S = 30.0


@dataclass
class Segment:
    path: Path
    start: float  # wall clock
    end: float
    size: int


@dataclass
class OpenClip:
    id: str
    start: float  # wall clock of the first wanted moment (event start minus pre-roll)
    events: set[str] = field(default_factory=set)
    all_events: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    info: dict[str, Any] | None = None
    end: float | None = None


class ClipRecorder:
    """One camera's ring recorder and its finished clips in `clips_dir`."""

    def __init__(self, camera: str, cfg: ClipConfig, ring_dir: Path, clips_dir: Path, storage: Storage,
                 log: KvLogger) -> None:
        self.camera, self.cfg, self.log, self.storage = camera, cfg, log, storage
        self.ring_dir, self.clips_dir = ring_dir, clips_dir
        self.url: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.current: OpenClip | None = None
        self.by_event: dict[str, OpenClip] = {}
        self.finishing: list[OpenClip] = []  # closed, waiting for post-roll and the remux: their segments stay
        self.recording = False
        self.restarts = 0
        self.failures = 0

    # ---- the ring -----------------------------------------------------------------------------
    def segments(self) -> list[Segment]:
        """Completed segments, oldest first, with wall times from their files (the newest is still open)."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.ring_dir):
                if SEGMENT.match(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        st = entry.stat()
                        found.append((entry.name, st.st_mtime, st.st_size))
        found.sort()
        out: list[Segment] = []
        for i, (name, mtime, size) in enumerate(found[:-1]):  # the last one is being written
            start = found[i - 1][1] if i > 0 else mtime - self.cfg.segment_s
            out.append(Segment(self.ring_dir / name, min(start, mtime), mtime, size))
        return out

    def trim_ring(self, now: float) -> None:
        """Drop segments nobody can want any more: older than pre-roll and not claimed by an open clip."""
        keep_from = now - self.cfg.pre_roll_s - 2 * self.cfg.segment_s
        for clip in (*self.by_event.values(), *self.finishing):  # every clip an open event or a cut still needs
            keep_from = min(keep_from, clip.start)
        for seg in self.segments():
            if seg.end < keep_from:
                seg.path.unlink(missing_ok=True)

    async def run(self, url: str) -> None:
        """Keep the ffmpeg child recording while allowed; restarted with backoff when it exits."""
        self.url = url
        backoff = Backoff(1.0, 30.0, jitter=0.2)
        self.ring_dir.mkdir(parents=True, exist_ok=True)
        for old in self.ring_dir.glob("seg*.ts"):
            old.unlink(missing_ok=True)  # a previous run's ring has lost its timing
        while True:
            if self.storage.paused is not None:
                self.recording = False
                await asyncio.sleep(1.0)
                continue
            t0 = time.monotonic()
            code = await self._record_once(url)
            self.recording = False
            self.storage.ring_rates.pop(self.camera, None)
            if self.storage.paused is not None:
                continue
            if time.monotonic() - t0 > 30:
                backoff.reset()
            self.restarts += 1
            self.log.warning("clip_recorder_exited", camera=self.camera, code=code, url=redact(url))
            await asyncio.sleep(backoff.next())

    async def _record_once(self, url: str) -> int | None:
        start_number = self._next_number()
        # not run_child: the recorder runs for hours and its stderr is read as it comes; the `finally` below ends it
        # through stop_child (SIGTERM first, so ffmpeg closes its open segment) on every way out, cancel included
        self.proc = proc = await asyncio.create_subprocess_exec(
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp",
            "-timeout", "5000000", "-i", url, "-map", "0:v:0", "-c", "copy", "-f", "segment",
            "-segment_time", f"{self.cfg.segment_s:g}", "-segment_format", "mpegts",
            "-segment_start_number", str(start_number), str(self.ring_dir / "seg%08d.ts"),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        self.recording = True
        self.log.info("clip_recorder_started", camera=self.camera, pid=proc.pid)
        trimmer = asyncio.create_task(self._trim_while(proc))
        try:
            assert proc.stderr is not None
            last = ""
            while line := await proc.stderr.readline():
                last = line.decode(errors="replace").strip() or last
            code = await proc.wait()
            if last:
                self.log.warning("clip_recorder_error", camera=self.camera, error=last[:200])
            return code
        finally:
            trimmer.cancel()
            await self._stop(proc)
            self.proc = None

    async def _trim_while(self, proc: asyncio.subprocess.Process) -> None:
        while proc.returncode is None:
            await asyncio.sleep(self.cfg.segment_s)
            self.trim_ring(time.time())
            recent = self.segments()[-3:]
            if recent:
                span = max(recent[-1].end - recent[0].start, self.cfg.segment_s)
                self.storage.ring_rates[self.camera] = sum(s.size for s in recent) / span
            self.storage.make_room(0)  # the rings never wait for the next check to stay in the budget
            if self.storage.paused is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()  # the disk is too full: stop writing at once

    def _next_number(self) -> int:
        nums = [int(m.group(1)) for p in self.ring_dir.glob("seg*.ts") if (m := SEGMENT.match(p.name))]
        return max(nums, default=-1) + 1

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        await stop_child(proc)

    # ---- clips --------------------------------------------------------------------------------
    def open(self, event_id: str, started_at: float) -> str | None:
        """Claim the ring for an event; events overlapping in time share one clip. None if not recording."""
        if not self.cfg.enabled or not self.recording:
            return None
        clip = self.current
        if clip is None or time.time() - clip.start > self.cfg.max_clip_s:
            clip = self.current = OpenClip(uuid.uuid4().hex[:16], started_at - self.cfg.pre_roll_s)
        clip.events.add(event_id)
        clip.all_events.append(event_id)
        self.by_event[event_id] = clip
        return clip.id

    async def close(self, event_id: str, ended_at: float) -> dict[str, Any] | None:
        """The event ended: once every event of its clip has, cut the clip; returns its reference."""
        clip = self.by_event.pop(event_id, None)
        if clip is None:
            return None
        clip.events.discard(event_id)
        clip.end = max(clip.end or 0.0, ended_at)
        if not clip.events:
            if self.current is clip:
                self.current = None
            self.finishing.append(clip)
            try:
                await self._finish(clip)
            finally:
                self.finishing.remove(clip)
                clip.done.set()
        else:
            await clip.done.wait()
        return clip.info

    async def _finish(self, clip: OpenClip) -> None:
        assert clip.end is not None
        until = min(clip.end, clip.start + self.cfg.pre_roll_s + self.cfg.max_clip_s) + self.cfg.post_roll_s
        deadline = time.monotonic() + max(0.0, until - time.time()) + FINISH_GRACE_S
        while time.monotonic() < deadline:
            segs = self.segments()
            if segs and segs[-1].end >= until:
                break
            await asyncio.sleep(0.25)
        wanted = [s for s in self.segments() if s.end > clip.start and s.start < until]
        if not wanted:
            self.failures += 1
            self.log.warning("clip_empty", camera=self.camera, clip=clip.id)
            return
        clip.info = await self._remux(clip, wanted)

    async def _remux(self, clip: OpenClip, segs: list[Segment]) -> dict[str, Any] | None:
        need = sum(s.size for s in segs)
        if not self.storage.reserve(need):
            self.failures += 1
            self.log.warning("clip_skipped", camera=self.camera, clip=clip.id, bytes=need, reason="over budget")
            return None
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{time.time_ns():020d}_{clip.id}"
        out = self.clips_dir / f"{stem}.mp4"
        tmp = self.clips_dir / f".{stem}.tmp.mp4"
        concat = "concat:" + "|".join(str(s.path) for s in segs)
        try:
            res = await run_child(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", concat,
                                   "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(tmp)],
                                  REMUX_BASE_S + need / REMUX_MIN_BYTES_PER_S, capture_stdout=False)
            error = res.stderr.decode(errors="replace")[-200:] if res.code != 0 or not tmp.exists() else None
        except ChildTimeout as exc:
            error = str(exc)
        finally:
            self.storage.release(need)
        if error is not None:
            tmp.unlink(missing_ok=True)
            self.failures += 1
            self.log.warning("clip_failed", camera=self.camera, clip=clip.id, error=error)
            return None
        os.replace(tmp, out)
        size = out.stat().st_size
        duration = await media_duration(out) or segs[-1].end - segs[0].start
        info = {"id": clip.id, "camera": self.camera, "file": out.name, "events": clip.all_events,
                "start": round(segs[-1].end - duration, 3), "end": round(segs[-1].end, 3),
                "duration_s": round(duration, 2), "bytes": size}
        await asyncio.to_thread(write_json_logged, self.clips_dir / f"{stem}.json", info, self.log)
        self.storage.note_written()
        self.log.info("clip_saved", camera=self.camera, clip=clip.id, bytes=size, duration_s=info["duration_s"])
        return {"id": clip.id, "duration_s": info["duration_s"], "bytes": size}

    def list(self) -> list[dict[str, Any]]:
        """Finished clips still on disk, oldest first."""
        out = []
        for meta in sorted(self.clips_dir.glob("*.json")):
            info = read_json(meta)
            if isinstance(info, dict) and (self.clips_dir / str(info.get("file"))).exists():
                out.append({k: info[k] for k in ("id", "start", "duration_s", "bytes", "events") if k in info})
        return out

    def path_of(self, clip_id: str) -> Path | None:
        if not CLIP_ID.match(clip_id):
            return None
        found = list(self.clips_dir.glob(f"*_{clip_id}.mp4"))
        return found[0] if found else None

    async def stop(self) -> None:
        if self.proc is not None:
            await self._stop(self.proc)


async def media_duration(path: Path) -> float | None:
    """The container's duration by ffprobe: the ring's file times only approximate the first segment."""
    try:
        res = await run_child(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                               str(path)], PROBE_TIMEOUT_S)
        return float(res.stdout.decode().strip())
    except (ChildTimeout, ValueError):
        return None


def clip_chunks(path: Path, offset: int, chunk_bytes: int) -> list[tuple[int, bytes]]:
    """(offset, bytes) pieces of a clip from offset to its end."""
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        while piece := f.read(chunk_bytes):
            out.append((offset, piece))
            offset += len(piece)
    return out
