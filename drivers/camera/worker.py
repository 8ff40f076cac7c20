"""One camera's capture and analysis, in its own process: a crashing codec takes down only this.

Run as `python -m drivers.camera.worker`. The first stdin line is the spec (JSON); later lines are
commands. Every output is one JSON line on stdout: status, health, event, snapshot, count, detector,
reply (the agent's side parses them in `protocol.py`). stdin closing means the agent is gone, so the
worker exits.
"""

from __future__ import annotations

import base64
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from drivers.camera.handoff import Handoff, lowered_reason
from drivers.camera.pace import Pace
from drivers.camera.plain import CameraView

if TYPE_CHECKING:  # only types: this process never imports pydantic (see plain.py)
    from drivers.camera.config import CameraConfig


@dataclass
class WorkerSpec:
    """What a worker is started with (its first stdin line): the camera, its stream URL, timeouts and heartbeat."""

    camera: CameraConfig | CameraView  # the model in the agent, its read-only view in the worker
    url: str
    timezone: str
    open_timeout_s: float
    read_timeout_s: float
    reconnect_min_s: float
    reconnect_max_s: float
    heartbeat_s: float = 1.0
    detector_socket: str | None = None  # the shared detector service's name; None = load a detector here
    detector_size: int = 320
    detector_crops: int = 3
    detector_timeout_s: float = 5.0

    def to_json(self) -> str:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "camera"}
        d["camera"] = self.camera.model_dump(mode="json")
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        d = json.loads(text)
        d["camera"] = CameraView(d["camera"])  # validated by the agent before it was written
        return cls(**d)


class Outbox:
    """Serialises JSON lines onto stdout from the capture loop and the heartbeat thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        line = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        with self.lock:
            self.stream.write(line)
            self.stream.flush()


class Stats:
    """Counters the heartbeat turns into rates; written by the capture loop only."""

    def __init__(self) -> None:
        self.grabbed = 0
        self.analysed = 0
        self.skipped = 0  # frames not analysed because the analysis thread was still busy
        self.decode_errors = 0
        self.reconnects = 0
        self.last_frame = 0.0  # monotonic; 0 = never
        self.connected = False
        self.size = (0, 0)


class Loader:
    """Builds the Analyzer (its detector loads a model) in a thread, so frames flow, and count, meanwhile."""

    def __init__(self, out: Outbox, spec: WorkerSpec) -> None:
        self.analyzer: Any = None
        self.shared: Any = None  # the SharedDetector, when the camera uses the service
        self.thread = threading.Thread(target=self._load, args=(out, spec), daemon=True)
        self.thread.start()

    def _load(self, out: Outbox, spec: WorkerSpec) -> None:
        from drivers.camera.analyzer import Analyzer

        cam = spec.camera
        if spec.detector_socket and cam.detect.enabled and cam.detect.detector == "yolo":
            from drivers.camera.shared_detector import SharedDetector

            # lines and stop zones lose counts when calls are late: the service serves these cameras first
            priority = 0 if cam.traffic.lines or cam.traffic.stop_zones else 1
            self.shared = SharedDetector(spec.detector_socket, cam.name, cam.detect, spec.detector_size,
                                         spec.detector_crops, priority, spec.detector_timeout_s)
            analyzer = Analyzer(cam, ZoneInfo(spec.timezone), detector=self.shared)
        else:
            from drivers.camera.detectors import DarknetDetector

            analyzer = Analyzer(cam, ZoneInfo(spec.timezone))
            if isinstance(analyzer.detector, DarknetDetector):
                analyzer.detector.warm_up()
        out.send({"t": "detector", "name": "yolo-shared" if self.shared else
                  analyzer.detector.name if analyzer.detector else None, "warning": analyzer.warning})
        self.analyzer = analyzer


def heartbeat(out: Outbox, stats: Stats, loader: Loader, pace: Pace, period: float, stop: threading.Event) -> None:
    """Health every period, even while the capture loop is blocked in a read that times out."""
    prev_t, prev_g, prev_a = time.monotonic(), 0, 0
    while not stop.wait(period):
        analyzer = loader.analyzer
        now = time.monotonic()
        g, a = stats.grabbed, stats.analysed
        dt = max(now - prev_t, 1e-3)
        if loader.shared is not None:
            loader.shared.reconnect()
        analysed_fps = round((a - prev_a) / dt, 2)
        slowdown = loader.shared.slowdown if loader.shared is not None else 1.0
        lowered = lowered_reason(pace.reason, slowdown) if stats.connected else None
        out.send({"t": "health", "input_fps": round((g - prev_g) / dt, 2), "analysed_fps": analysed_fps,
                  "last_frame_age_s": round(now - stats.last_frame, 2) if stats.last_frame else None,
                  "decode_errors": stats.decode_errors, "reconnects": stats.reconnects,
                  "connected": stats.connected, "width": stats.size[0], "height": stats.size[1],
                  "recalibrations": analyzer.recalibrations if analyzer else 0,
                  "detector_calls": analyzer.detector_calls if analyzer else 0,
                  "detector": analyzer.detector.name if analyzer and analyzer.detector else None,
                  "analysis_fps": round(pace.fps, 2), "analysis_lowered": lowered, "lag_s": round(pace.lag_s, 2),
                  "analysis_skipped": stats.skipped,
                  **(loader.shared.state() if loader.shared else {})})
        prev_t, prev_g, prev_a = now, g, a


def read_commands(stream: IO[bytes], commands: queue.Queue[dict[str, Any]], stop: threading.Event) -> None:
    for line in stream:
        try:
            commands.put(json.loads(line))
        except ValueError:
            continue
    stop.set()  # the agent closed our stdin: it is gone or wants us gone


def encode_outputs(outputs: list[Any]) -> list[dict[str, Any]]:
    from drivers.camera.events import CountOut, EventOut

    msgs = []
    for o in outputs:
        if isinstance(o, EventOut):
            msgs.append({"t": "event", "kind": o.kind, "phase": o.phase, "event_id": o.event_id, "ts": o.ts,
                         "data": o.data})
        elif isinstance(o, CountOut):
            msgs.append({"t": "count", "line": o.line, "class": o.label, "direction": o.direction, "ts": o.ts})
        else:
            msgs.append({"t": "snapshot", "kind": o.kind, "event_id": o.event_id, "score": o.score,
                         "jpeg": base64.b64encode(o.jpeg).decode()})
    return msgs


def run(spec: WorkerSpec, out: Outbox, commands: queue.Queue[dict[str, Any]], stop: threading.Event) -> None:
    """Capture and analyse until stopped."""
    from agent.backoff import Backoff
    from drivers.camera.capture import RtspCapture
    from drivers.camera.snapshots import encode_jpeg

    cam = spec.camera
    loader = Loader(out, spec)
    stats = Stats()
    pace = Pace(cam.detect_fps)
    threading.Thread(target=heartbeat, args=(out, stats, loader, pace, spec.heartbeat_s, stop), daemon=True).start()
    backoff = Backoff(spec.reconnect_min_s, spec.reconnect_max_s, jitter=0.2)
    interval = 1.0 / cam.detect_fps
    latest: tuple[float, Any] | None = None

    def analyse(frame: Any, mono: float, wall: float) -> None:
        stats.analysed += 1
        analyzer = loader.analyzer
        if analyzer is None:
            return  # still loading the detector
        if loader.shared is not None:
            analyzer.slowdown = loader.shared.slowdown
        for msg in encode_outputs(analyzer.process(frame, mono, wall)):
            out.send(msg)

    handoff = Handoff(analyse)

    def serve(cmd: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"t": "reply", "request": cmd.get("request")}
        if cmd.get("cmd") != "snapshot":
            reply["error"] = f"unknown worker command {cmd.get('cmd')!r}"
        elif latest is None or time.monotonic() - latest[0] > max(2.0, 3 * interval):
            reply["error"] = "no recent frame from the camera"
        else:
            frame = latest[1]
            jpeg = encode_jpeg(frame, cam.snapshot.width, cam.snapshot.quality)
            reply.update(jpeg=base64.b64encode(jpeg).decode(), width=frame.shape[1], height=frame.shape[0])
        out.send(reply)

    while not stop.is_set():
        cap = RtspCapture(spec.url, spec.open_timeout_s, spec.read_timeout_s)
        if not cap.open():
            cap.close()
            out.send({"t": "status", "connected": False, "detail": "open failed"})
            while not commands.empty():
                serve(commands.get_nowait())
            stop.wait(backoff.next())
            continue
        stats.connected = True
        stats.size = cap.size
        out.send({"t": "status", "connected": True, "width": stats.size[0], "height": stats.size[1]})
        next_t = 0.0
        frames_this_session = 0
        pace.reset()
        while not stop.is_set():
            while not commands.empty():
                serve(commands.get_nowait())
            before = time.monotonic()
            ok = cap.grab()
            now = time.monotonic()
            if not ok or now - before >= 0.9 * spec.read_timeout_s:
                break  # FFmpeg's read timeout can still report success: a stall this long is a lost stream
            stats.grabbed += 1
            stats.last_frame = now
            frames_this_session += 1
            if frames_this_session == 25:
                backoff.reset()  # only a connection that delivered frames earns a fresh backoff
            pace.observe(now, cap.stream_s())
            if now < next_t:
                continue
            interval = 1.0 / pace.fps
            next_t = next_t + interval if now - next_t < interval else now + interval
            if not handoff.idle.is_set():
                stats.skipped += 1  # decoded, not analysed: the last frame's analysis is still running
                continue
            frame = cap.retrieve()
            if frame is None:
                stats.decode_errors += 1
                continue
            latest = (now, frame)
            handoff.offer(frame, now, time.time())
        cap.close()
        stats.connected = False
        if stop.is_set():
            break
        stats.reconnects += 1
        latest = None
        out.send({"t": "status", "connected": False, "detail": "stream lost"})
        handoff.wait_idle(60.0)
        for msg in encode_outputs(loader.analyzer.flush(time.monotonic(), time.time()) if loader.analyzer else []):
            out.send(msg)
        stop.wait(backoff.next())


def main() -> int:
    stdin = sys.stdin.buffer
    first = stdin.readline()
    if not first:
        return 2
    spec = WorkerSpec.from_json(first.decode())
    import cv2

    # one core per camera at most: OpenCV's thread pool on a busy 2-core box costs more CPU than it saves time
    cv2.setNumThreads(1)
    out = Outbox(sys.stdout.buffer)
    sys.stdout = sys.stderr  # nothing else may write into the message stream
    commands: queue.Queue[dict[str, Any]] = queue.Queue()
    stop = threading.Event()
    threading.Thread(target=read_commands, args=(stdin, commands, stop), daemon=True).start()
    try:
        run(spec, out, commands, stop)
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
