"""Snapshots and clip pieces are sized to what the COC's broker takes (its maximum packet size)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from drivers.camera.camera import Camera
from drivers.camera.config import CamerasConfig
from drivers.camera.snapshots import encode_jpeg
from drivers.camera.storage import Storage
from tests.support.context import RecordingContext


def runner_for(tmp_path: Path, limit: int | None) -> tuple[RecordingContext, Camera]:
    cfg = CamerasConfig.model_validate({"devices": [{"name": "yard", "rtsp_url": "rtsp://127.0.0.1:9/x",
                                                     "snapshot": {"width": 1920, "quality": 95}}]})
    ctx = RecordingContext("cameras", cfg, tmp_path / "data")
    ctx.max_message_bytes = limit
    return ctx, Camera(cfg.devices[0], cfg, ctx, Storage(ctx.data_dir, cfg.storage, ctx.log))


def test_a_snapshot_above_the_broker_limit_is_sent_smaller_and_one_below_as_it_is(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    big = encode_jpeg(noise, 1920, 95)
    small = encode_jpeg(noise[:90, :160], 160, 80)
    limit = 100_000
    assert len(big) > 5 * limit > len(small)
    ctx, runner = runner_for(tmp_path, limit)
    for event_id, jpeg in (("e1", big), ("e2", small)):
        asyncio.run(runner.dispatcher.feed(json.dumps({"t": "snapshot", "kind": "motion", "event_id": event_id,
                                                       "jpeg": base64.b64encode(jpeg).decode()}).encode()))
    sent = {s.event_id: s.jpeg for s in ctx.snapshots}
    assert len(sent["e1"]) <= limit and sent["e1"][:2] == b"\xff\xd8"  # still a JPEG
    assert sent["e2"] == small and ctx.counters["snapshot_shrunk"] == 1


def test_clip_pieces_never_exceed_the_broker_limit_whatever_the_coc_asks(tmp_path: Path) -> None:
    ctx, runner = runner_for(tmp_path, 64 * 1024)
    clip_id = "0123456789abcdef"
    data = os.urandom(300_000)
    runner.clips.clips_dir.mkdir(parents=True, exist_ok=True)
    (runner.clips.clips_dir / f"20260101T000000_{clip_id}.mp4").write_bytes(data)
    reply = asyncio.run(runner.commands.clip({"camera": "yard", "id": clip_id, "chunk_bytes": 4 * 1024 * 1024}))
    assert reply["chunk_bytes"] == 64 * 1024 and reply["chunks"] == 5
    assert all(len(c.data) <= 64 * 1024 for c in ctx.chunks)
    joined = b"".join(c.data for c in sorted(ctx.chunks, key=lambda c: c.offset))
    assert hashlib.sha256(joined).hexdigest() == reply["sha256"] == ctx.events_of("clip_upload")[0].data["sha256"]
