"""The shared detector on its own: the real service process answering real workers' slots (boxes back in frame
pixels, HOG while it is away), its scheduling (lines and stop zones first, nobody starves, late requests shed),
the family restarting it when it hangs, and the pieces the workers use (crops, duplicate boxes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.logs import KvLogger
from drivers.camera.config import DetectConfig, DetectorServiceConfig
from drivers.camera.crops import plan_crops, render_crop
from drivers.camera.detector_service import Client, Request, Service, YoloNet
from drivers.camera.detector_supervisor import DetectorSupervisor
from drivers.camera.detectors import Detection
from drivers.camera.shared_detector import LocalDetector, SharedDetector, drop_parts
from tests.camera.scenes import render_scene
from tests.support.wait import async_wait_until, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """A real service process on a name of its own."""
    name = f"test-detector-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "drivers.camera.detector_service", "--name", name,
                             "--input-size", "320", "--heartbeat-s", "0.2"], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    try:
        wait_until(lambda: b"ready" in proc.stdout.readline(), timeout=30, what="the service ready")  # type: ignore
        yield name
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # EOF on stdin: the service ends by itself
        proc.wait(10)


def walker_frame() -> np.ndarray:
    """A 720p frame with a real man half-way across (the eight-camera scenes' walker)."""
    return render_scene("walker@0", 1280, 720, 5, 2.2)[10]


def test_a_worker_gets_its_people_back_in_frame_pixels(service: str) -> None:
    det = SharedDetector(service, "gate", DetectConfig(), 320, 3, 1, 2.0)
    frame = walker_frame()
    found = det.detect(frame, [(500, 150, 300, 560)])  # the motion region around him
    assert det.name == "yolo" and det.state()["detector_service"] == "up"
    people = [d for d in found if d.label == "person"]
    assert len(people) == 1 and people[0].score > 0.8
    x, y, w, h = people[0].box
    assert 520 <= x + w / 2 <= 760 and y + h > 600 and h > 350  # where the sprite is: centre, feet, height
    whole = det.detect(frame, [(0, 0, 1280, 720)])  # no motion to go by: the whole frame, letterboxed
    assert any(d.label == "person" and 520 <= d.box[0] + d.box[2] / 2 <= 760 for d in whole), whole
    # `camera analyze` runs the same crops and network in its own process: the same boxes
    local = LocalDetector(DetectConfig(), 320, 3, YoloNet(None, 320))
    assert local.detect(frame, [(500, 150, 300, 560)]) == found


def test_without_the_service_a_worker_uses_hog_and_says_since_when(service: str) -> None:
    det = SharedDetector(f"absent-{uuid.uuid4().hex[:8]}", "gate", DetectConfig(), 320, 3, 1, 1.0)
    found = det.detect(walker_frame(), [(500, 150, 300, 560)])
    state = det.state()
    assert det.name == "hog" and state["detector_service"] == "down" and state["detector_fallback_calls"] == 1
    assert state["detector_down_since"] <= time.time() and "connect" in state["detector_error"]
    assert all(d.label == "person" for d in found)
    det.name_of_service = service  # the service comes (back): the next call after the retry delay uses it
    det.retry_at = 0.0
    det.reconnect()
    assert det.name == "yolo" and det.state()["detector_down_since"] is None


class Slot:
    """A socket stand-in that keeps what the service answers (the scheduling needs no network)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)


def scheduler(shed_after_s: float = 0.8, batch_max: int = 3) -> Service:
    svc = Service.__new__(Service)  # the scheduling half of the service: no network, no listener
    svc.batch_max, svc.shed_after_s, svc.pending = batch_max, shed_after_s, []
    svc.shed = 0
    return svc


def client(name: str, priority: int) -> Client:
    return Client(Slot(), name, np.zeros((3, 32, 32, 3), np.uint8), 0.3, frozenset({"person"}), priority,
                  None)  # type: ignore[arg-type]


def test_lines_and_stop_zones_go_first_but_nobody_starves() -> None:
    svc = scheduler()
    now = 100.0
    plain = [client(f"yard{i}", 1) for i in range(3)]
    lines = [client(f"road{i}", 0) for i in range(2)]
    svc.pending = [Request(c, 1, 1, now - 0.1) for c in plain] + [Request(c, 1, 1, now) for c in lines]
    first = svc._pick(now)  # three crops fit: both counting cameras, then the oldest plain one
    assert [r.client.camera for r in first] == ["road0", "road1", "yard0"]
    # a plain camera that waited half the shed time is as urgent as a counting one, oldest first
    svc.pending = [Request(plain[1], 2, 1, now - 0.5), Request(lines[0], 2, 1, now - 0.1),
                   Request(lines[1], 2, 1, now), Request(plain[2], 2, 1, now)]
    assert [r.client.camera for r in svc._pick(now)] == ["yard1", "road0", "road1"]
    assert [r.client.camera for r in svc.pending] == ["yard2"]


def test_a_request_that_waited_too_long_is_shed_not_queued() -> None:
    svc = scheduler(shed_after_s=0.8)
    late, fresh = client("late", 1), client("fresh", 1)
    svc.pending = [Request(late, 7, 1, 99.0), Request(fresh, 8, 1, 99.9)]
    svc._shed_late(100.0)
    assert [r.client.camera for r in svc.pending] == ["fresh"] and svc.shed == 1 and late.shed == 1
    assert b'"t":"shed","id":7' in late.conn.sent[0]  # type: ignore[attr-defined]


def test_a_hung_service_is_killed_and_restarted_and_the_gap_kept(tmp_path: Path) -> None:
    asyncio.run(_hung())


async def _hung() -> None:
    sup = DetectorSupervisor(DetectorServiceConfig(hung_after_s=2), None, KvLogger("test.detector"), lambda *_: None)
    task = asyncio.create_task(sup.run())
    try:
        await async_wait_until(lambda: sup.ready and sup.proc is not None, timeout=30, what="the service ready")
        assert sup.proc is not None
        pid = sup.proc.pid
        os.kill(pid, signal.SIGSTOP)  # wedged: alive, silent
        stopped = time.time()
        await async_wait_until(lambda: sup.ready and sup.proc is not None and sup.proc.pid != pid, timeout=30,
                               what="a new service after the hang")
        [gap] = list(sup.outages)
        assert stopped + 1.5 <= gap["to"] and gap["from"] >= stopped and gap["s"] > 0
        assert sup.restarts == 1 and sup.down_since is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_wide_motion_is_split_a_big_object_kept_whole_and_nothing_allocated_per_crop() -> None:
    assert plan_crops([(100, 300, 200, 300)], 1280, 720, 320, 3) == [(40, 290, 320, 320)]  # at least S wide
    assert plan_crops([(0, 100, 900, 600)], 1280, 720, 320, 3) == [(0, 100, 900, 600)]  # one car: letterboxed
    wide = plan_crops([(0, 300, 1280, 200)], 1280, 720, 320, 3)  # a whole street moving: squares side by side
    assert len(wide) == 2 and all(w == h == 720 for _, _, w, h in wide) and wide[0][0] == 0 and wide[-1][0] == 560
    apart = plan_crops([(0, 0, 100, 100), (1100, 600, 100, 100)], 1280, 720, 320, 3)
    assert apart == [(0, 0, 320, 320), (960, 400, 320, 320)]  # two far-apart movers: a crop each, full pixels
    assert plan_crops([], 1280, 720, 320, 3) == [(0, 0, 1280, 720)]
    frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), np.uint8)
    slot = np.zeros((320, 320, 3), np.uint8)
    assert render_crop(frame, (0, 0, 1280, 720), slot) == 0.25 and (slot[180:] == 114).all()  # letterbox pad
    assert render_crop(frame, (10, 20, 320, 320), slot) == 1.0 and (slot == frame[20:340, 10:330]).all()


def test_pieces_of_one_object_from_overlapping_crops_are_one_detection() -> None:
    car = Detection((600, 340, 500, 350), 0.98, "car")
    part = Detection((620, 350, 230, 320), 0.86, "car")  # a crop's edge cut the car: its front alone
    walker = Detection((700, 300, 120, 400), 0.7, "person")  # in front of the car: another kind, kept
    assert drop_parts([part, walker, car]) == [car, walker]
