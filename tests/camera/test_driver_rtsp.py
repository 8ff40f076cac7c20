"""The driver against real GStreamer RTSP servers: events, snapshots, restarts, freezes, dead cameras."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.driver import CommandError, LinkState
from drivers.camera.camera import Camera
from drivers.camera.config import CamerasConfig
from drivers.camera.driver import CameraDriver
from drivers.camera.snapshots import encode_jpeg
from drivers.camera.storage import Storage
from tests.camera.servers import RtspServer
from tests.support.context import RecordingContext
from tests.support.wait import async_wait_until


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word: a camera that never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


def camera(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "rtsp_url": url, "update_every_s": 60, **extra}


class Running:
    """The driver as a task on the test's loop, cancelled (and its workers stopped) at the end."""

    def __init__(self, ctx: RecordingContext) -> None:
        self.ctx = ctx
        self.driver = CameraDriver()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.driver.run(self.ctx))
        await asyncio.sleep(0)  # run() builds its cameras before its first await
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        assert all(r.worker.proc is None for r in self.driver.cameras.values()), "a worker outlived the driver"


def events(ctx: RecordingContext, kind: str, camera: str, phase: str | None = None) -> list:
    return [e for e in ctx.events if e.kind == kind and e.data.get("camera") == camera
            and (phase is None or e.data.get("phase") == phase)]


@pytest.mark.slow
def test_scenes_events_snapshots_and_a_dead_camera(tmp_path: Path, silent_port: int) -> None:
    asyncio.run(_scenes(tmp_path, silent_port))


async def _scenes(tmp_path: Path, silent_port: int) -> None:
    work = tmp_path / "scenes"
    person = RtspServer(work, "player", seconds=12).start()  # 7 s of empty street per loop
    light = RtspServer(work, "brightness", 320, 180, seconds=6).start()
    noise = RtspServer(work, "noise", 320, 180, seconds=4).start()
    try:
        cfg = CamerasConfig.model_validate({
            "devices": [camera("person", person.url, motion={"end_after_s": 2}), camera("light", light.url),
                        camera("noise", noise.url),
                        camera("dead", f"rtsp://127.0.0.1:{silent_port}/cam")],
            # offline after the default 6 s: the test's own RTSP servers encode on a shared 2-core box
            "open_timeout_s": 2, "read_timeout_s": 2, "offline_after_s": 6, "health_interval_s": 2})
        ctx = RecordingContext("cameras", cfg, tmp_path / "data")
        async with Running(ctx):
            await async_wait_until(lambda: events(ctx, "person", "person", "start"), timeout=45,
                                   what="person event from the player scene")
            await async_wait_until(lambda: [e for e in ctx.events if e.kind == "camera_offline"], timeout=15,
                                   what="camera_offline for the dead camera")
            reply = await ctx.commands["snapshot"]({"camera": "light"})
            assert reply["width"] == 320 and reply["bytes"] > 1000
            with pytest.raises(CommandError, match="unknown camera"):
                await ctx.commands["snapshot"]({"camera": "nope"})
            await async_wait_until(lambda: [s for s in ctx.snapshots if s.camera == "person"
                                            and s.event_id == events(ctx, "person", "person", "start")[0].id],
                                   timeout=60, what="the person event's snapshot")
            await async_wait_until(lambda: {r.tags.get("camera") for r in ctx.readings_named("analysed_fps")
                                            if r.value} >= {"person", "light", "noise"}, timeout=10,
                                   what="analysed fps from every live camera")
        offline = [e for e in ctx.events if e.kind == "camera_offline"]
        assert [e.data["camera"] for e in offline] == ["dead"]
        assert offline[0].data["problem"].startswith("stream: ")
        assert events(ctx, "motion", "person", "start")
        assert not events(ctx, "motion", "light") and not events(ctx, "motion", "noise")
        assert not [e for e in ctx.events if e.kind == "person" and e.data["camera"] != "person"]
        fps = [r.value for r in ctx.readings_named("analysed_fps") if r.tags["camera"] == "person" and r.value]
        assert max(fps) <= 6.5  # 10 fps in, only detect fps (5) analysed
        assert ctx.state == "degraded"
        assert (tmp_path / "data" / "state.json").exists()
    finally:
        for s in (person, light, noise):
            s.stop()


@pytest.mark.slow
def test_restart_freeze_and_return(tmp_path: Path) -> None:
    asyncio.run(_restart(tmp_path))


async def _restart(tmp_path: Path) -> None:
    srv = RtspServer(tmp_path / "scenes", "mover", 320, 180, seconds=4).start()
    try:
        cfg = CamerasConfig.model_validate({
            "devices": [camera("gate", srv.url)], "open_timeout_s": 2, "read_timeout_s": 3,
            "reconnect_max_s": 2, "offline_after_s": 5, "online_after_s": 1, "health_interval_s": 60})
        ctx = RecordingContext("cameras", cfg, tmp_path / "data")
        async with Running(ctx) as run:
            runner = run.driver.cameras["gate"]
            worker, live = runner.worker, runner.liveness
            await async_wait_until(lambda: live.online, timeout=20, what="camera online")

            # the worker dies (a codec crash): the driver starts a new one and frames flow again
            assert worker.proc is not None
            crashed = worker.proc.pid
            os.kill(crashed, signal.SIGKILL)
            await async_wait_until(lambda: worker.proc is not None and worker.proc.pid != crashed, timeout=10,
                                   what="a new worker after a crash")
            restarted = time.monotonic()
            await async_wait_until(lambda: live.last_frame > restarted, timeout=10, what="frames after the crash")
            assert ctx.counters["worker_restarts"] == 1

            # the server restarts on the same port: frames must flow again within 5 s of it being back
            srv.stop()
            await async_wait_until(lambda: live.frame_age(time.monotonic()) > 1.0, timeout=10, what="frames stop")
            srv.start()
            back = time.monotonic()
            await async_wait_until(lambda: live.frame_age(time.monotonic()) < 0.5 and live.last_frame > back,
                                   timeout=5.0, what="capture back within 5 s of the server")

            # the server hangs (SIGSTOP): camera_offline within 10 s, then back online when it resumes
            srv.freeze()
            frozen = time.monotonic()
            await async_wait_until(lambda: ctx.events_of("camera_offline"), timeout=10,
                                   what="camera_offline within 10 s of a frozen server")
            assert time.monotonic() - frozen <= 10
            srv.thaw()
            await async_wait_until(lambda: ctx.events_of("camera_online"), timeout=20, what="camera_online")
            assert live.heartbeat.get("reconnects", 0) >= 1
    finally:
        srv.stop()


def test_metered_link_defers_snapshots(tmp_path: Path) -> None:
    asyncio.run(_metered(tmp_path))


async def _metered(tmp_path: Path) -> None:
    cfg = CamerasConfig.model_validate({"devices": [camera("yard", "rtsp://127.0.0.1:9/x")]})
    ctx = RecordingContext("cameras", cfg, tmp_path / "data")
    runner = Camera(cfg.devices[0], cfg, ctx, Storage(ctx.data_dir, cfg.storage, ctx.log))
    jpeg = encode_jpeg(np.full((360, 640, 3), 128, np.uint8), 640, 80)
    ctx.set_link(LinkState("wan2-4g", metered=True))
    for kind, event_id in (("motion", "m1"), ("person", "p1")):
        await runner.dispatcher.feed(json.dumps({"t": "snapshot", "kind": kind, "event_id": event_id,
                                                 "jpeg": base64.b64encode(jpeg).decode()}).encode())
    assert [s.event_id for s in ctx.snapshots] == ["p1"]  # a person goes at once, small
    assert len(ctx.snapshots[0].jpeg) < len(jpeg)
    assert [eid for eid, _ in runner.store.pending()] == ["m1", "p1"]
    assert await runner.flush_pending() == 0  # still metered
    ctx.set_link(LinkState("wan1", metered=False))
    assert await runner.flush_pending() == 2
    assert [s.event_id for s in ctx.snapshots] == ["p1", "m1", "p1"] and ctx.snapshots[-1].jpeg == jpeg
    assert runner.store.pending() == []


def test_missing_model_falls_back_to_hog_and_health_says_why(tmp_path: Path) -> None:
    asyncio.run(_fallback(tmp_path))


async def _fallback(tmp_path: Path) -> None:
    srv = RtspServer(tmp_path / "scenes", "mover", 320, 180, seconds=4).start()
    try:
        empty = tmp_path / "no-models"
        empty.mkdir()
        cfg = CamerasConfig.model_validate({
            "devices": [camera("gate", srv.url, detect={"model_dir": str(empty)}, clip={"enabled": False})],
            "open_timeout_s": 2, "read_timeout_s": 2, "health_interval_s": 60})
        ctx = RecordingContext("cameras", cfg, tmp_path / "data")
        async with Running(ctx) as run:
            runner = run.driver.cameras["gate"]
            await async_wait_until(lambda: runner.detector == "hog", timeout=20, what="the HOG fallback reported")
            await async_wait_until(lambda: ctx.state == "degraded" and "using HOG" in ctx.states[-1][1], timeout=10,
                                   what="health degraded with the reason")
            assert ctx.counters["detector_fallback"] == 1 and "no detector model installed" in ctx.states[-1][1]
            await async_wait_until(lambda: events(ctx, "motion", "gate", "start"), timeout=30,
                                   what="motion events still flowing")
    finally:
        srv.stop()


def test_worker_killed_mid_event_ends_its_events(tmp_path: Path) -> None:
    asyncio.run(_killed_mid_event(tmp_path))


async def _killed_mid_event(tmp_path: Path) -> None:
    # the mover crosses 3 s of every 4: its motion event goes on until the worker is killed
    srv = RtspServer(tmp_path / "scenes", "mover", 320, 180, seconds=4).start()
    try:
        cfg = CamerasConfig.model_validate({
            "devices": [camera("gate", srv.url, clip={"enabled": False})], "open_timeout_s": 2,
            "read_timeout_s": 3, "health_interval_s": 60})
        ctx = RecordingContext("cameras", cfg, tmp_path / "data")
        async with Running(ctx) as run:
            runner = run.driver.cameras["gate"]
            worker = runner.worker
            await async_wait_until(lambda: events(ctx, "motion", "gate", "start"), timeout=30,
                                   what="a motion event from the mover")
            start = events(ctx, "motion", "gate", "start")[0]
            assert not [e for e in ctx.events if e.id == f"{start.id}-end"], "the event ended by itself"
            assert worker.proc is not None
            killed = worker.proc.pid
            os.kill(killed, signal.SIGKILL)
            died = time.time()
            await async_wait_until(lambda: [e for e in ctx.events if e.id == f"{start.id}-end"], timeout=10,
                                   what="the open event's end after the worker was killed")
            [end] = [e for e in ctx.events if e.id == f"{start.id}-end"]
            assert end.kind == "motion" and end.data["phase"] == "end" and end.data["end_reason"] == "worker_died"
            assert end.data["event_id"] == start.id and end.data["started_at"] == start.data["started_at"]
            assert start.data["started_at"] <= end.data["ended_at"] <= died + 0.1  # last heard before the kill
            assert died - end.data["ended_at"] <= 2.5  # heartbeats come every second
            assert end.data["duration_s"] == pytest.approx(end.data["ended_at"] - end.data["started_at"], abs=0.02)
            assert end.ts == pytest.approx(end.data["ended_at"], abs=0.001) and end.data["snapshot"] is False
            assert ctx.counters["events_ended_by_agent"] == 1 and runner.events.open_events == {}

            # the driver starts a new worker, which sees the mover again and opens a new event
            await async_wait_until(lambda: worker.proc is not None and worker.proc.pid != killed, timeout=10,
                                   what="a new worker after the kill")
            await async_wait_until(lambda: len(events(ctx, "motion", "gate", "start")) >= 2, timeout=30,
                                   what="a new motion event from the new worker")
            assert ctx.counters["worker_restarts"] == 1
        ends = [e for e in ctx.events if e.id == f"{start.id}-end"]
        assert len(ends) == 1, "an event ended twice"
    finally:
        srv.stop()
