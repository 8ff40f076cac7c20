"""A camera worker's side of the shared detector: crops into its memfd slot, one request, the answer per crop.

The worker never loads a network. While the service is down, hung or refusing, the camera keeps detecting
people with HOG (no model, a few MB) and retries the service with backoff; `state` says which it is using
and since when, for the worker's heartbeat. A `shed` answer (the service is busy) makes the camera call
less often until answers come back in time; so does a late (`busy`) answer, which a counting camera gets
instead of being shed.
"""

from __future__ import annotations

import mmap
import os
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.backoff import Backoff
from drivers.camera.crops import plan_crops, render_crop
from drivers.camera.detector_wire import WireError, address, p95_ms, recv, send
from drivers.camera.detectors import Box, Detection, HogDetector, keep_wanted, kind_of

if TYPE_CHECKING:  # only types: the worker process never imports pydantic (see plain.py)
    from drivers.camera.config import DetectConfig

LATENCIES = 64  # answers the heartbeat's p95 looks back on
MAX_SLOWDOWN = 8.0  # a busy service stretches this camera's detector interval at most this much


PART = 0.7  # a box this much inside a better one of the same kind is a piece of it (crops overlap, cut objects)


def drop_parts(dets: list[Detection]) -> list[Detection]:
    """Without the boxes mostly inside a higher-scoring box of the same kind: overlapping crops and objects cut
    at a crop's edge give one object several boxes, and each would be a track of its own crossing a line."""
    keep: list[Detection] = []
    for d in sorted(dets, key=lambda d: d.score, reverse=True):
        x, y, w, h = d.box
        area = max(1, w * h)
        if not any(kind_of(k.label) == kind_of(d.label) and _inter(d.box, k.box) >= PART * area for k in keep):
            keep.append(d)
    return keep


def _inter(a: Box, b: Box) -> int:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


def in_frame(cfg: DetectConfig, crops: list[Box], scales: list[float], rows: list[list[list[Any]]]) -> list[Detection]:
    """The network's boxes per crop ([x, y, w, h, score, label] in crop pixels) as one camera's detections in
    frame pixels: wanted classes above their scores, non-maximum suppressed, pieces of one object merged."""
    found: list[tuple[Box, float, str]] = []
    for (x0, y0, _, _), scale, mine in zip(crops, scales, rows):
        for x, y, bw, bh, score, label in mine:
            found.append(((x0 + int(x / scale), y0 + int(y / scale), int(bw / scale), int(bh / scale)),
                          float(score), str(label)))
    return drop_parts(keep_wanted(cfg, found))


class LocalDetector:
    """The shared detector's crops and network in this process: `camera analyze` gives the events the live
    cameras would (same input size, same crops, same merging of boxes)."""

    name = "yolo"

    def __init__(self, cfg: DetectConfig, size: int, max_crops: int, net: Any) -> None:
        self.cfg, self.size, self.max_crops, self.net = cfg, size, max_crops, net
        self.slot = np.zeros((max_crops, size, size, 3), np.uint8)
        low = min(cfg.score_for(c) for c in cfg.classes)
        self.want = (low, frozenset(cfg.classes))

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        h, w = frame.shape[:2]
        crops = plan_crops(regions, w, h, self.size, self.max_crops)
        scales = [render_crop(frame, rect, self.slot[i]) for i, rect in enumerate(crops)]
        rows = self.net.infer(self.slot[:len(crops)], [self.want] * len(crops))
        return in_frame(self.cfg, crops, scales, rows)


class NoAnswer(Exception):
    """The service shed this request: the call did not happen (no misses counted, no tracks moved)."""


class SharedDetector:
    """Detector protocol over the shared service, with HOG while it is unavailable."""

    def __init__(self, socket_name: str, camera: str, cfg: DetectConfig, size: int, max_crops: int,
                 priority: int, timeout_s: float) -> None:
        self.name_of_service = socket_name
        self.camera, self.cfg, self.size, self.max_crops = camera, cfg, size, max_crops
        self.priority, self.timeout_s = priority, timeout_s
        self.fd = os.memfd_create(f"camera-{camera}", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, max_crops * size * size * 3)
        self.buf = mmap.mmap(self.fd, max_crops * size * size * 3)
        self.slot = np.ndarray((max_crops, size, size, 3), np.uint8, self.buf)
        self.sock: socket.socket | None = None
        self.hog: HogDetector | None = None
        self.retry = Backoff(0.5, 10.0, jitter=0.2)
        self.retry_at = 0.0  # monotonic
        self.down_since: float | None = time.time()  # wall; None while the service answers
        self.last_error = "not connected yet"
        self.next_id = 0
        self.calls = self.shed = self.busy = self.fallback_calls = self.failures = 0
        self.slowdown = 1.0  # multiplies the camera's detector intervals while the service sheds
        self.latencies: deque[float] = deque(maxlen=LATENCIES)
        self.lock = threading.Lock()  # one request at a time on the socket: analysis calls, heartbeat reconnects

    @property
    def name(self) -> str:
        return "yolo" if self.sock is not None else "hog"

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(address(self.name_of_service))
            low = min(self.cfg.score_for(c) for c in self.cfg.classes)
            send(sock, {"t": "hello", "camera": self.camera, "crops": self.max_crops, "size": self.size,
                        "classes": list(self.cfg.classes), "min_score": low, "priority": self.priority}, [self.fd])
            msg = recv(sock)
            if msg.get("t") != "ready":
                raise WireError(str(msg.get("why", msg.get("t"))))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.down_since = None
        self.retry.reset()

    def _drop(self, why: str) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.down_since is None:
            self.down_since = time.time()
        self.failures += 1
        self.last_error = why
        self.retry_at = time.monotonic() + self.retry.next()

    def _ask(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        assert self.sock is not None
        h, w = frame.shape[:2]
        crops = plan_crops(regions, w, h, self.size, self.max_crops)
        scales = [render_crop(frame, rect, self.slot[i]) for i, rect in enumerate(crops)]
        self.next_id += 1
        t0 = time.monotonic()
        send(self.sock, {"t": "detect", "id": self.next_id, "crops": len(crops)})
        msg = recv(self.sock)
        while msg.get("t") in ("result", "shed") and msg.get("id") != self.next_id:
            msg = recv(self.sock)  # an answer to a request this worker gave up on cannot be, but costs nothing
        if msg.get("t") == "shed":
            self.shed += 1
            self.slowdown = min(MAX_SLOWDOWN, self.slowdown * 2)
            raise NoAnswer()
        if msg.get("t") != "result" or not isinstance(msg.get("crops"), list) or len(msg["crops"]) != len(crops):
            raise WireError(f"unexpected answer {str(msg.get('t'))[:20]}")
        self.latencies.append(time.monotonic() - t0)
        if msg.get("busy") is True:  # answered, late: a counting camera is never shed, it slows down instead
            self.busy += 1
            self.slowdown = min(MAX_SLOWDOWN, self.slowdown * 2)
        elif self.slowdown > 1.0:
            self.slowdown = max(1.0, self.slowdown / 1.5)
        return in_frame(self.cfg, crops, scales, msg["crops"])

    def _try_connect(self) -> None:
        if self.sock is None and time.monotonic() >= self.retry_at:
            try:
                self._connect()
            except (OSError, WireError) as exc:
                self._drop(f"connect: {exc}")

    def reconnect(self) -> None:
        """From the heartbeat: back on the service as soon as it is, not at this camera's next motion."""
        if self.lock.acquire(blocking=False):
            try:
                self._try_connect()
            finally:
                self.lock.release()

    def detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        """Objects in frame from the service; from HOG while it is unavailable; NoAnswer when it shed the call."""
        with self.lock:
            return self._detect(frame, regions)

    def _detect(self, frame: np.ndarray, regions: list[Box]) -> list[Detection]:
        self.calls += 1
        self._try_connect()
        if self.sock is not None:
            try:
                return self._ask(frame, regions)
            except TimeoutError:
                self._drop(f"no answer within {self.timeout_s:g} s")
            except (OSError, WireError) as exc:
                self._drop(str(exc) or type(exc).__name__)
        self.fallback_calls += 1
        if self.hog is None:
            self.hog = HogDetector(self.cfg)
        return self.hog.detect(frame, regions)

    def state(self) -> dict[str, Any]:
        """For the heartbeat: which detector answers, since when the service is missing, shed and p95."""
        return {"detector_service": "up" if self.sock is not None else "down",
                "detector_down_since": self.down_since, "detector_error": None if self.sock else self.last_error,
                "detector_shed": self.shed, "detector_busy": self.busy, "detector_fallback_calls": self.fallback_calls,
                "detector_slowdown": round(self.slowdown, 2),
                "detect_p95_ms": p95_ms(self.latencies)}
