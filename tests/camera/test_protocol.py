"""The worker protocol: every line parsed once into a typed message, bad ones counted, never a crash of the reader."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from agent.logs import KvLogger
from drivers.camera.camera import Camera
from drivers.camera.config import CamerasConfig
from drivers.camera.events import CountOut, EventOut, SnapshotOut
from drivers.camera.phases import Phase
from drivers.camera.protocol import (
    BAD_MESSAGE,
    MESSAGE_TYPES,
    BadMessage,
    DetectorInfo,
    Dispatcher,
    Heartbeat,
    LineCount,
    Reply,
    Status,
    WorkerEvent,
    WorkerSnapshot,
    parse_line,
)
from drivers.camera.storage import Storage
from drivers.camera.worker import encode_outputs
from tests.support.context import RecordingContext

JPEG = b"\xff\xd8 not really a picture \xff\xd9"
B64 = base64.b64encode(JPEG).decode()


def line(msg: Any) -> bytes:
    return json.dumps(msg).encode() + b"\n"


BAD_LINES = {
    "not JSON": b"{half a line\n",
    "a JSON list": line([1, 2]),
    "no type": line({"connected": True}),
    "unknown type": line({"t": "gossip"}),
    "unhashable type": line({"t": ["event"]}),
    "event without phase": line({"t": "event", "kind": "motion", "event_id": "e1"}),
    "event with an unknown phase": line({"t": "event", "kind": "motion", "phase": "middle", "event_id": "e1"}),
    "event without id": line({"t": "event", "kind": "motion", "phase": "start"}),
    "event data not an object": line({"t": "event", "kind": "motion", "phase": "start", "event_id": "e", "data": 3}),
    "snapshot without picture": line({"t": "snapshot", "event_id": "e1"}),
    "snapshot not base64": line({"t": "snapshot", "event_id": "e1", "jpeg": "abc"}),
    "count without class": line({"t": "count", "line": "l1", "direction": "a"}),
    "status without connected": line({"t": "status", "detail": "open failed"}),
    "status connected as a number": line({"t": "status", "connected": 1}),
    "health age as text": line({"t": "health", "last_frame_age_s": "soon"}),
    "health age as a boolean": line({"t": "health", "last_frame_age_s": True}),
    "reply without request": line({"t": "reply", "jpeg": B64}),
    "reply without picture or error": line({"t": "reply", "request": "r1"}),
}


@pytest.mark.parametrize("raw", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_bad_line_is_a_bad_message(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        parse_line(raw)


def test_what_the_worker_writes_parses_to_typed_messages() -> None:
    outs = [EventOut("person", Phase.START, "e1", 1700000000.5, {"camera": "yard", "phase": Phase.START}),
            CountOut("gate", "car", "north", 1700000001.0), SnapshotOut("person", "e1", JPEG, 0.8)]
    event, count, snap = (parse_line(line(m)) for m in encode_outputs(outs))
    assert event == WorkerEvent("person", Phase.START, "e1", 1700000000.5, {"camera": "yard", "phase": "start"})
    assert count == LineCount("gate", "car", "north")
    assert snap == WorkerSnapshot("person", "e1", JPEG)


def test_the_other_message_types() -> None:
    health = parse_line(line({"t": "health", "input_fps": 10.0, "last_frame_age_s": 0, "reconnects": 2}))
    assert health == Heartbeat(0.0, {"input_fps": 10.0, "last_frame_age_s": 0, "reconnects": 2})
    assert parse_line(line({"t": "health", "last_frame_age_s": None})) == Heartbeat(None, {"last_frame_age_s": None})
    assert parse_line(line({"t": "status", "connected": False, "detail": "stream lost"})) == Status(
        False, "stream lost", None, None)
    assert parse_line(line({"t": "detector", "name": "hog", "warning": ""})) == DetectorInfo("hog", None)
    assert parse_line(line({"t": "reply", "request": "r1", "jpeg": B64, "width": 320, "height": 180})) == Reply(
        "r1", None, JPEG, 320, 180)
    assert parse_line(line({"t": "reply", "request": "r1", "error": "no recent frame"})) == Reply(
        "r1", "no recent frame", None, None, None)


def test_phases_are_the_words_the_coc_receives() -> None:
    assert [str(p) for p in Phase] == ["start", "update", "end", "alert"]
    assert json.dumps({"phase": Phase.END}) == '{"phase": "end"}' and Phase.END == "end"


def test_the_dispatcher_counts_bad_lines_and_goes_on() -> None:
    counted: list[str] = []
    seen: list[Any] = []

    async def handle(msg: Any) -> None:
        seen.append(msg)

    dispatcher = Dispatcher({t: handle for t in MESSAGE_TYPES}, counted.append, KvLogger("test.camera.protocol"))

    async def feed_all() -> None:
        for raw in BAD_LINES.values():
            await dispatcher.feed(raw)
        await dispatcher.feed(line({"t": "count", "line": "l1", "class": "car", "direction": "a"}))

    asyncio.run(feed_all())
    assert counted == [BAD_MESSAGE] * len(BAD_LINES)
    assert seen == [LineCount("l1", "car", "a")] and dispatcher.last_heard_wall > 0


def test_a_table_missing_a_message_type_is_refused_at_start() -> None:
    async def handle(msg: Any) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="Reply"):
        Dispatcher({t: handle for t in MESSAGE_TYPES if t is not Reply}, lambda name: None,
                   KvLogger("test.camera.protocol"))


def test_the_runner_counts_bad_worker_lines_and_still_relays_good_ones(tmp_path: Path) -> None:
    cfg = CamerasConfig.model_validate({"devices": [{"name": "yard", "rtsp_url": "rtsp://127.0.0.1:9/x",
                                                     "clip": {"enabled": False}}]})
    ctx = RecordingContext("cameras", cfg, tmp_path / "data")
    runner = Camera(cfg.devices[0], cfg, ctx, Storage(ctx.data_dir, cfg.storage, ctx.log))
    start = {"t": "event", "kind": "motion", "phase": "start", "event_id": "e1", "ts": 1700000000.0,
             "data": {"camera": "yard", "phase": "start", "event_id": "e1", "started_at": 1700000000.0}}

    async def feed() -> None:
        for raw in BAD_LINES.values():
            await runner.dispatcher.feed(raw)
        await runner.dispatcher.feed(line({"t": "health", "last_frame_age_s": 0.2, "input_fps": 9.5}))
        await runner.dispatcher.feed(line(start))

    asyncio.run(feed())
    assert ctx.counters[BAD_MESSAGE] == len(BAD_LINES)
    [event] = ctx.events
    assert (event.kind, event.id, event.data["phase"], event.data["clip"]) == ("motion", "e1", "start", None)
    assert runner.events.open_events == {"e1": ("motion", event.data)}
    assert runner.liveness.heartbeat == {"last_frame_age_s": 0.2, "input_fps": 9.5}
