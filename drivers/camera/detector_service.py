"""The shared detector: one process, one planned network at one input size, for every camera worker.

Run as `python -m drivers.camera.detector_service --name NAME --input-size S ...` by the cameras family
(`detector_supervisor.py`). Workers connect to the abstract unix socket NAME, hand over a memfd slot of
`crops` S×S BGR pictures, and per request say how many crops they wrote; requests waiting together are run
as one batch (at most batch_max crops) and answered per camera. Counting-line and stop-zone cameras go first,
a request that waited half of shed_after_ms goes first too (nobody starves), and one that waited all of it is
answered `shed` so its camera lowers its own call rate; a counting camera's is still answered (a lost
detection is a lost count), marked `busy` so that camera slows down all the same. Each worker has one
request at most in flight, so the queue never holds more than one per camera. stdout: a JSON line `ready`,
then `health` every heartbeat from the inference loop itself (a wedged network stops them, and the family
restarts the service).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import queue
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from drivers.camera.detector_wire import WireError, address, p95_ms, recv, recv_with_fd, send
from drivers.camera.detectors import COCO_ALIASES
from drivers.camera.models import ModelError, load_installed

LATENCIES = 256  # answers the health's p95 looks back on


class YoloNet:
    """The installed YOLOv3-tiny at size×size, planned at start for every batch size up to batch_max: its memory
    is all taken then, not grown later the first time three cameras happen to wait at once."""

    name = "yolo"

    def __init__(self, model_dir: Path | None, size: int, batch_max: int = 1) -> None:
        model = load_installed(model_dir)
        self.size = size
        self.net = cv2.dnn.readNetFromDarknet(str(model.cfg), str(model.weights))
        self.outputs = self.net.getUnconnectedOutLayersNames()
        self.labels = [COCO_ALIASES.get(n, n) for n in model.names.read_text().split()]
        for n in range(batch_max, 0, -1):  # plan now, not at first motion
            self.infer(np.zeros((n, size, size, 3), np.uint8), [(0.99, frozenset())] * n)

    def infer(self, images: np.ndarray, wants: list[tuple[float, frozenset[str]]]) -> list[list[list[Any]]]:
        """Per image: [x, y, w, h, score, label] in its pixels, above its min score and in its classes."""
        n, s = len(images), self.size
        self.net.setInput(cv2.dnn.blobFromImages(list(images), 1 / 255.0, (s, s), swapRB=True, crop=False))
        outs = [o.reshape(n, -1, o.shape[-1]) for o in self.net.forward(self.outputs)]
        found = []
        for i, (low, classes) in enumerate(wants):
            rows = np.vstack([o[i] for o in outs])
            scores = rows[:, 5:]  # OpenCV's region layer already multiplies in the objectness
            cls = scores.argmax(axis=1)
            best = scores[np.arange(len(cls)), cls]
            keep = best >= low
            mine = []
            for (cx, cy, w, h), score, c in zip(rows[keep, :4] * s, best[keep], cls[keep]):
                label = self.labels[c]
                if label in classes:
                    mine.append([int(cx - w / 2), int(cy - h / 2), int(w), int(h), round(float(score), 4), label])
            found.append(mine)
        return found


@dataclass
class Client:
    """One camera worker's connection and the slot its crops are written to."""

    conn: socket.socket
    camera: str
    slot: np.ndarray
    low: float
    classes: frozenset[str]
    priority: int
    buf: mmap.mmap
    lock: threading.Lock = field(default_factory=threading.Lock)
    served: int = 0
    shed: int = 0

    def reply(self, msg: dict[str, Any]) -> None:
        try:
            with self.lock:
                send(self.conn, msg)
        except OSError:
            pass  # the worker is gone; its reader thread ends the connection


@dataclass
class Request:
    client: Client
    id: int
    crops: int
    arrived: float  # monotonic


class Service:
    """Accepts workers, queues their requests, runs batches, answers; counters for the health line."""

    def __init__(self, net: YoloNet, name: str, batch_max: int, shed_after_s: float, out: IO[bytes]) -> None:
        self.net, self.batch_max, self.shed_after_s, self.out = net, batch_max, shed_after_s, out
        self.requests: queue.Queue[Request] = queue.Queue()
        self.pending: list[Request] = []
        self.clients: dict[int, Client] = {}
        self.latencies: deque[float] = deque(maxlen=LATENCIES)  # arrival -> answer, per request
        self.infers: deque[float] = deque(maxlen=LATENCIES)  # the network's time per batch
        self.served = self.batches = self.shed = self.refused = 0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(address(name))
        self.listener.listen(64)

    def emit(self, msg: dict[str, Any]) -> None:
        self.out.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    def accept_forever(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _hello(self, conn: socket.socket) -> Client | None:
        msg, fd = recv_with_fd(conn)
        s = self.net.size
        crops = msg.get("crops")
        if msg.get("t") != "hello" or fd is None or msg.get("size") != s or not isinstance(crops, int) or crops < 1:
            if fd is not None:
                os.close(fd)
            self.refused += 1
            send(conn, {"t": "refused", "why": f"hello needs a memfd slot of crops × {s}×{s}×3"})
            return None
        try:
            buf = mmap.mmap(fd, crops * s * s * 3)
        except (OSError, ValueError):
            self.refused += 1
            send(conn, {"t": "refused", "why": "slot smaller than its crops"})
            return None
        finally:
            os.close(fd)
        slot = np.ndarray((crops, s, s, 3), np.uint8, buf)
        return Client(conn, str(msg.get("camera", "?")), slot, float(msg.get("min_score", 0.35)),
                      frozenset(msg.get("classes") or ()), int(msg.get("priority", 1)), buf)

    def _serve(self, conn: socket.socket) -> None:
        """A worker's connection: hello with its slot, then requests until it goes."""
        client = None
        try:
            client = self._hello(conn)
            if client is None:
                return
            self.clients[id(client)] = client
            send(conn, {"t": "ready", "name": self.net.name, "size": self.net.size})
            while True:
                msg = recv(conn)
                n = msg.get("crops")
                if msg.get("t") == "detect" and isinstance(n, int) and 1 <= n <= len(client.slot):
                    self.requests.put(Request(client, int(msg.get("id", 0)), n, time.monotonic()))
                else:
                    self.refused += 1
        except (OSError, WireError):
            pass
        finally:
            if client is not None:
                self.clients.pop(id(client), None)
            conn.close()

    def _gather(self, wait_s: float) -> None:
        try:
            self.pending.append(self.requests.get(timeout=wait_s))
            while True:
                self.pending.append(self.requests.get_nowait())
        except queue.Empty:
            pass

    def _shed_late(self, now: float) -> None:
        """Answer `shed` to requests that waited all of shed_after_s: their cameras slow down instead of queueing.
        Counting-line and stop-zone cameras' requests stay, to be answered `busy` (they slow down too)."""
        late = [r for r in self.pending if now - r.arrived >= self.shed_after_s]
        for r in late:
            if r.client.priority == 0:
                continue
            self.pending.remove(r)
            self.shed += 1
            r.client.shed += 1
            r.client.reply({"t": "shed", "id": r.id, "waited_ms": round((now - r.arrived) * 1000)})

    def _pick(self, now: float) -> list[Request]:
        """Lines and stop zones first, anyone who waited half the shed time as urgently, then oldest first."""
        urgent = self.shed_after_s / 2
        order = sorted(self.pending, key=lambda r: (0 if r.client.priority == 0 or now - r.arrived >= urgent else 1,
                                                    r.arrived))
        batch: list[Request] = []
        total = 0
        for r in order:
            if batch and total + r.crops > self.batch_max:
                continue
            batch.append(r)
            total += r.crops
        for r in batch:
            self.pending.remove(r)
        return batch

    def _run(self, batch: list[Request]) -> None:
        images = [r.client.slot[i] for r in batch for i in range(r.crops)]
        wants = [(r.client.low, r.client.classes) for r in batch for _ in range(r.crops)]
        t0 = time.monotonic()
        found: list[list[list[Any]]] = []
        for i in range(0, len(images), self.batch_max):
            found += self.net.infer(np.stack(images[i:i + self.batch_max]), wants[i:i + self.batch_max])
        done = time.monotonic()
        self.batches += 1
        self.infers.append(done - t0)
        k = 0
        for r in batch:
            self.served += 1
            r.client.served += 1
            self.latencies.append(done - r.arrived)
            r.client.reply({"t": "result", "id": r.id, "crops": found[k:k + r.crops],
                            "wait_ms": round((t0 - r.arrived) * 1000), "infer_ms": round((done - t0) * 1000),
                            "busy": t0 - r.arrived >= self.shed_after_s,
                            "batch": len(images)})
            k += r.crops

    def health(self) -> dict[str, Any]:
        """The heartbeat: counters, and the answer time's p95 beside the network's own (the rest is queueing)."""
        return {"t": "health", "clients": len(self.clients), "served": self.served, "batches": self.batches,
                "shed": self.shed, "refused": self.refused, "queue": len(self.pending),
                "p95_ms": p95_ms(self.latencies), "infer_p95_ms": p95_ms(self.infers),
                "cameras": {c.camera: {"served": c.served, "shed": c.shed} for c in list(self.clients.values())}}

    def loop(self, heartbeat_s: float, stop: threading.Event) -> None:
        next_beat = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self.emit(self.health())
                next_beat = now + heartbeat_s
            self._gather(0.0 if self.pending else min(0.2, max(0.0, next_beat - now)))
            now = time.monotonic()
            self._shed_late(now)
            if self.pending:
                self._run(self._pick(now))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drivers.camera.detector_service")
    ap.add_argument("--name", required=True, help="abstract unix socket name the workers connect to")
    ap.add_argument("--input-size", type=int, default=320)
    ap.add_argument("--batch-max", type=int, default=3)
    ap.add_argument("--shed-after-ms", type=float, default=800)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--heartbeat-s", type=float, default=1.0)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # one core for the network: the other is the cameras' decode
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    try:
        net = YoloNet(args.model_dir, args.input_size, args.batch_max)
    except (ModelError, cv2.error) as exc:
        out.write(json.dumps({"t": "failed", "why": str(exc)}).encode() + b"\n")
        out.flush()
        return 3
    service = Service(net, args.name, args.batch_max, args.shed_after_ms / 1000.0, out)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # EOF: the family is gone or wants us gone
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=service.accept_forever, daemon=True).start()
    service.emit({"t": "ready", "name": net.name, "size": net.size, "pid": os.getpid()})
    try:
        service.loop(args.heartbeat_s, stop)
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
