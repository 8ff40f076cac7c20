"""Event clips from a real GStreamer RTSP camera: pre-roll before the event, read back by ffprobe, fetched
byte-identical through the COC `clip` command over a real mosquitto, deferred on a metered link."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.driver import CommandError, LinkState
from drivers.camera.config import CamerasConfig
from tests.camera.scenes import SCENES
from tests.camera.servers import RtspServer
from tests.camera.test_driver_rtsp import Running, camera, events
from tests.support.agentproc import AgentProcess, write_config
from tests.support.context import RecordingContext
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import async_wait_until, wait_until

BASE = "commune/v1/t1"
CLIP = {"pre_roll_s": 2, "post_roll_s": 2, "segment_s": 1}


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
                          "-of", "json", str(path)], capture_output=True, check=True, timeout=30).stdout
    info = json.loads(out)
    assert info["streams"][0]["codec_name"] == "h264"
    return float(info["format"]["duration"])


def first_frame(path: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def clip_file(data: Path, clip_id: str) -> Path:
    [path] = list(data.rglob(f"*_{clip_id}.mp4"))
    return path


def test_clip_has_pre_roll_and_the_expected_duration(tmp_path: Path) -> None:
    asyncio.run(_pre_roll(tmp_path))


async def _pre_roll(tmp_path: Path) -> None:
    # the player is in the picture from 1 s to 5 s of every 10 s loop; before that the street is empty
    srv = RtspServer(tmp_path / "scenes", "player", seconds=10).start()
    try:
        cfg = CamerasConfig.model_validate({
            "devices": [camera("gate", srv.url, motion={"end_after_s": 1.5}, clip=CLIP)],
            "open_timeout_s": 2, "read_timeout_s": 2, "health_interval_s": 60})
        ctx = RecordingContext("cameras", cfg, tmp_path / "data")
        ctx_started = time.time()
        async with Running(ctx):
            # the second pass: by then the ring holds a full pre-roll from before the player came back
            ends = await async_wait_until(
                lambda: [e for e in events(ctx, "motion", "gate", "end") if (e.data.get("clip") or {}).get("bytes")
                         and e.data["started_at"] - ctx_started > 10], timeout=90, what="a second clip")
        end = ends[0]
        start = next(e for e in events(ctx, "motion", "gate", "start") if e.id == end.data["event_id"])
        clip_id = end.data["clip"]["id"]
        [meta] = [json.loads(p.read_text()) for p in (tmp_path / "data").rglob(f"clips/*/*_{clip_id}.json")]
        assert meta["start"] <= start.data["started_at"] - CLIP["pre_roll_s"] + 0.3  # its first frame is earlier
        assert start.data["clip"]["id"] == end.data["clip"]["id"]
        path = clip_file(tmp_path / "data", end.data["clip"]["id"])
        assert path.stat().st_size == end.data["clip"]["bytes"]
        duration = ffprobe_duration(path)
        # from pre-roll before the first of its events to post-roll after the last one ended (events that
        # overlap share a clip); segments are cut at 1 s key frames
        mine = [e for e in ctx.events if e.data.get("event_id") in meta["events"]]
        first = min(e.data["started_at"] for e in mine)
        last = max(e.ts for e in mine if e.data.get("phase") == "end")
        expected = last - first + CLIP["pre_roll_s"] + CLIP["post_roll_s"]
        assert abs(duration - end.data["clip"]["duration_s"]) < 0.1
        assert expected - 1.0 <= duration <= expected + 2.2
        # the first frame is from before the event: the empty street, not the player
        empty = SCENES["player"].render(640, 360, 10, 0.2)[0]
        frame = first_frame(path)
        assert float(np.mean(cv2.absdiff(frame, empty))) < 6.0
        person = [e for e in events(ctx, "person", "gate", "end") if e.data.get("motion_id") == start.id]
        if person:  # a person event inside the motion event shares its clip
            assert person[0].data["clip"]["id"] == end.data["clip"]["id"]
    finally:
        srv.stop()


def test_clip_command_lists_defers_on_metered_and_rejects_bad_input(tmp_path: Path) -> None:
    asyncio.run(_command(tmp_path))


async def _command(tmp_path: Path) -> None:
    srv = RtspServer(tmp_path / "scenes", "mover", 320, 180, seconds=4).start()
    try:
        cfg = CamerasConfig.model_validate({
            "devices": [camera("yard", srv.url, motion={"end_after_s": 1}, clip=CLIP)],
            "open_timeout_s": 2, "read_timeout_s": 2, "health_interval_s": 60})
        ctx = RecordingContext("cameras", cfg, tmp_path / "data")
        async with Running(ctx):
            await async_wait_until(lambda: [e for e in events(ctx, "motion", "yard", "end")
                                            if (e.data.get("clip") or {}).get("bytes")], timeout=60, what="a clip")
            cmd = ctx.commands["clip"]
            listed = (await cmd({"camera": "yard"}))["clips"]
            assert listed and listed[0]["bytes"] > 0
            clip_id = listed[0]["id"]
            for bad, why in [({"camera": "yard", "id": "../../etc/passwd"}, "no clip"),
                             ({"camera": "yard", "id": clip_id, "offset": -1}, "offset"),
                             ({"camera": "yard", "id": clip_id, "chunk_bytes": "big"}, "chunk_bytes"),
                             ({"camera": "nope", "id": clip_id}, "unknown camera")]:
                with pytest.raises(CommandError, match=why):
                    await cmd(bad)
            ctx.set_link(LinkState("wan2-4g", metered=True))
            reply = await cmd({"camera": "yard", "id": clip_id})
            assert reply["deferred"] is True and not ctx.chunks and not ctx.events_of("clip_upload")
            # the 4G SIM's data budget is spent: even a forced (urgent) upload waits, and the reply says why
            ctx.set_link(LinkState("wan2-4g", metered=True, defer_bulk=True, budget_pct=102.5))
            reply = await cmd({"camera": "yard", "id": clip_id, "force": True})
            assert reply["deferred"] is True and "data budget of wan2-4g at 102.5%" in reply["detail"]
            assert not ctx.chunks and not ctx.events_of("clip_upload")
            ctx.set_link(LinkState("wan1", metered=False))
            upload = (await async_wait_until(lambda: ctx.events_of("clip_upload"), timeout=10,
                                             what="the deferred clip described when the link is unmetered"))[0]
            await async_wait_until(lambda: len(ctx.chunks) == upload.data["chunks"], timeout=10,
                                   what="every piece of the deferred clip")
            assert {c.clip_id for c in ctx.chunks} == {clip_id}
            data = b"".join(c.data for c in sorted(ctx.chunks, key=lambda c: c.offset))
            assert len(data) == upload.data["total"]
            assert hashlib.sha256(data).hexdigest() == upload.data["sha256"]
            assert data == clip_file(tmp_path / "data", clip_id).read_bytes()
    finally:
        srv.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


def test_clip_fetched_byte_identical_over_mqtt_and_resumed(tmp_path: Path, broker: Broker) -> None:
    srv = RtspServer(tmp_path / "scenes", "mover", 320, 180, seconds=4).start()
    data = tmp_path / "data"
    cameras = {"open_timeout_s": 2, "read_timeout_s": 2, "health_interval_s": 60,
               "devices": [camera("cong", srv.url, motion={"end_after_s": 1}, clip=CLIP)]}
    config = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"), cameras=cameras)
    rec = Recorder(broker.port, topics=(f"{BASE}/event/#", f"{BASE}/clip/#", f"{BASE}/cmd/+/result")).start()
    agent = AgentProcess(config, tmp_path / "agent.log").start()
    try:
        def clip_ref() -> dict[str, Any] | None:
            for m in rec.on("/event/motion"):
                ref = m.json()["data"].get("clip")
                if m.json()["data"]["phase"] == "end" and ref and ref.get("bytes"):
                    return ref
            return None

        ref = wait_until(clip_ref, timeout=90, what="a motion end event with its clip on MQTT")
        on_disk = clip_file(data, ref["id"]).read_bytes()
        assert len(on_disk) == ref["bytes"]
        chunk = 16 * 1024
        rec.publish(f"{BASE}/cmd/clip", json.dumps({"request_id": "c1", "camera": "cong", "id": ref["id"],
                                                   "chunk_bytes": chunk}))
        result = wait_until(lambda: [m.json() for m in rec.on("/cmd/clip/result") if m.json()["request_id"] == "c1"],
                            timeout=30, what="clip command result")[0]
        assert result["ok"] and result["bytes"] == len(on_disk) and result["chunks"] == -(-len(on_disk) // chunk)

        prefix = f"/clip/cong/{ref['id']}/"

        def pieces() -> dict[int, bytes]:
            """Raw pieces by offset, taken from the topic; a repeat (at-least-once) overwrites its twin."""
            return {int(m.topic.rsplit("/", 1)[1]): m.payload for m in rec.on(prefix + "#")}

        def complete() -> dict[int, bytes] | None:
            got = pieces()
            return got if got and max(got) + len(got[max(got)]) == len(on_disk) else None

        got = wait_until(complete, timeout=30, what="every piece of the clip on clip/{camera}/{id}/{offset}")
        assert b"".join(got[k] for k in sorted(got)) == on_disk
        assert hashlib.sha256(on_disk).hexdigest() == result["sha256"]
        upload = [m.json()["data"] for m in rec.on("/event/clip_upload")]
        assert upload and upload[0]["total"] == len(on_disk) and upload[0]["sha256"] == result["sha256"]

        # resume: a COC that lost the tail asks again from an offset and gets exactly the rest
        before = len(rec.on(prefix + "#"))
        offset = 2 * chunk
        rec.publish(f"{BASE}/cmd/clip", json.dumps({"request_id": "c2", "camera": "cong", "id": ref["id"],
                                                   "chunk_bytes": chunk, "offset": offset}))
        wait_until(lambda: [m for m in rec.on("/cmd/clip/result") if m.json()["request_id"] == "c2"], timeout=30,
                   what="resume result")
        wait_until(lambda: len(rec.on(prefix + "#")) - before >= result["chunks"] - 2, timeout=30,
                   what="the resumed pieces")
        again = {int(m.topic.rsplit("/", 1)[1]): m.payload for m in rec.on(prefix + "#")[before:]}
        assert min(again) == offset
        assert on_disk[:offset] + b"".join(again[k] for k in sorted(again)) == on_disk
    finally:
        agent.stop()
        rec.stop()
        srv.stop()


def test_ring_keeps_what_open_and_finishing_clips_need(tmp_path: Path) -> None:
    """Unit: trimming never drops a segment an open event (even of a superseded clip) or a cut still needs."""
    from agent.logs import KvLogger
    from drivers.camera.clips import ClipRecorder
    from drivers.camera.config import ClipConfig, StorageConfig
    from drivers.camera.storage import Storage

    ring = tmp_path / "ring"
    ring.mkdir()
    now = time.time()
    for i in range(30):  # 30 one-second segments, the newest still being written
        p = ring / f"seg{i:08d}.ts"
        p.write_bytes(b"x" * 100)
        os.utime(p, (now - 30 + i, now - 30 + i))
    storage = Storage(tmp_path, StorageConfig(min_free_bytes=0), KvLogger("t"))
    rec = ClipRecorder("c", ClipConfig(pre_roll_s=2, max_clip_s=5), ring, tmp_path / "clips", storage, KvLogger("t"))
    rec.recording = True
    rec.open("e1", now - 20)  # pre-roll from now-22
    rec.current.start -= 10  # type: ignore[union-attr]  # make it old enough to be superseded
    rec.open("e2", now - 5)  # a new clip: e1's must still be kept
    rec.trim_ring(now)
    kept = sorted(p.name for p in ring.glob("seg*.ts"))
    assert kept[0] == "seg00000000.ts" and len(kept) == 30
    rec.by_event.pop("e1")
    rec.trim_ring(now)
    assert len(list(ring.glob("seg*.ts"))) < 30
