"""The camera worker's wire protocol as typed messages: each stdout line is parsed once, here, and dispatched by type.

The worker (`drivers.camera.worker`) writes one JSON object per line, its type in `t`: health (the
heartbeat, `Heartbeat`), status, event, snapshot, count, detector, reply. The agent writes commands back on
the worker's stdin (`{"cmd": "snapshot", "request": ...}`). A line that is not JSON, has an unknown `t` or lacks a field
its type needs is a `BadMessage`: counted (`bad_worker_message`), never a crash of the reader.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Union

from agent.logs import KvLogger
from drivers.camera.phases import Phase

BAD_MESSAGE = "bad_worker_message"


class BadMessage(Exception):
    """A worker line the agent cannot use; the text says why (for the debug log)."""


@dataclass(frozen=True)
class Heartbeat:
    """The heartbeat: rates and counters every `heartbeat_s`; `fields` is all of it, kept for state and telemetry."""

    last_frame_age_s: float | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class Status:
    """The stream connected (with its size) or went down (with why)."""

    connected: bool
    detail: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class WorkerEvent:
    """One phase of an event as the worker's tracker made it; `data` is the COC's payload."""

    kind: str
    phase: Phase
    event_id: str
    ts: float | None
    data: dict[str, Any]


@dataclass(frozen=True)
class WorkerSnapshot:
    """An event's best picture (JPEG, already decoded from the line's base64)."""

    kind: str | None
    event_id: str
    jpeg: bytes


@dataclass(frozen=True)
class LineCount:
    """One object crossing one counting line."""

    line: str
    label: str
    direction: str


@dataclass(frozen=True)
class DetectorInfo:
    """Which detector the worker loaded, and why it fell back if it did."""

    name: str | None
    warning: str | None


@dataclass(frozen=True)
class Reply:
    """The answer to a command the agent wrote on the worker's stdin."""

    request: str
    error: str | None
    jpeg: bytes | None
    width: int | None
    height: int | None


WorkerMessage = Union[Heartbeat, Status, WorkerEvent, WorkerSnapshot, LineCount, DetectorInfo, Reply]
MESSAGE_TYPES: tuple[type, ...] = (Heartbeat, Status, WorkerEvent, WorkerSnapshot, LineCount, DetectorInfo, Reply)


def _field(msg: dict[str, Any], key: str, types: type | tuple[type, ...], required: bool) -> Any:
    value = msg.get(key)
    if value is None:
        if required:
            raise BadMessage(f"{msg['t']}: no {key}")
        return None
    if isinstance(value, bool) != (types is bool) or not isinstance(value, types):  # True is an int too
        raise BadMessage(f"{msg['t']}: {key} is {type(value).__name__}")
    return value


def _need(msg: dict[str, Any], key: str, types: type | tuple[type, ...]) -> Any:
    return _field(msg, key, types, True)


def _may(msg: dict[str, Any], key: str, types: type | tuple[type, ...]) -> Any:
    return _field(msg, key, types, False)


def _jpeg(msg: dict[str, Any]) -> bytes:
    text = _need(msg, "jpeg", str)
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError) as exc:
        raise BadMessage(f"{msg['t']}: jpeg is not base64") from exc


def _heartbeat(msg: dict[str, Any]) -> Heartbeat:
    age = _may(msg, "last_frame_age_s", (int, float))
    return Heartbeat(float(age) if age is not None else None, {k: v for k, v in msg.items() if k != "t"})


def _status(msg: dict[str, Any]) -> Status:
    return Status(_need(msg, "connected", bool), _may(msg, "detail", str), _may(msg, "width", int),
                  _may(msg, "height", int))


def _event(msg: dict[str, Any]) -> WorkerEvent:
    text = _need(msg, "phase", str)
    try:
        phase = Phase(text)
    except ValueError as exc:
        raise BadMessage(f"event: unknown phase {text[:40]!r}") from exc
    ts = _may(msg, "ts", (int, float))
    return WorkerEvent(_need(msg, "kind", str), phase, _need(msg, "event_id", str),
                       float(ts) if ts is not None else None, dict(_may(msg, "data", dict) or {}))


def _snapshot(msg: dict[str, Any]) -> WorkerSnapshot:
    return WorkerSnapshot(_may(msg, "kind", str), _need(msg, "event_id", str), _jpeg(msg))


def _count(msg: dict[str, Any]) -> LineCount:
    return LineCount(_need(msg, "line", str), _need(msg, "class", str), _need(msg, "direction", str))


def _detector(msg: dict[str, Any]) -> DetectorInfo:
    return DetectorInfo(_may(msg, "name", str) or None, _may(msg, "warning", str) or None)


def _reply(msg: dict[str, Any]) -> Reply:
    error = _may(msg, "error", str)
    return Reply(_need(msg, "request", str), error, None if error else _jpeg(msg), _may(msg, "width", int),
                 _may(msg, "height", int))


PARSERS: dict[str, Callable[[dict[str, Any]], WorkerMessage]] = {
    "health": _heartbeat, "status": _status, "event": _event, "snapshot": _snapshot, "count": _count,
    "detector": _detector, "reply": _reply,
}


def parse_line(line: bytes) -> WorkerMessage:
    """One stdout line of the worker as its typed message; BadMessage if it is not one."""
    try:
        msg = json.loads(line)
    except ValueError as exc:
        raise BadMessage("not JSON") from exc
    if not isinstance(msg, dict):
        raise BadMessage(f"a JSON {type(msg).__name__}, not an object")
    kind = msg.get("t")
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise BadMessage(f"unknown type {str(kind)[:40]!r}")
    return parser(msg)


def snapshot_request(request: str) -> bytes:
    """The command line asking the worker for a fresh picture; its Reply carries the same `request`."""
    return json.dumps({"cmd": "snapshot", "request": request}).encode() + b"\n"


Handler = Callable[[Any], Awaitable[None]]


class Dispatcher:
    """The handler table (message type -> handler), complete by construction; bad lines are counted and skipped."""

    def __init__(self, handlers: dict[type, Handler], count: Callable[[str], None], log: KvLogger) -> None:
        missing = [t.__name__ for t in MESSAGE_TYPES if t not in handlers]
        if missing:
            raise ValueError(f"no handler for worker message(s) {', '.join(missing)}")
        self.handlers = handlers
        self.count = count
        self.log = log
        self.last_heard_wall = 0.0  # wall time of the latest good message: when the worker was last alive

    async def feed(self, line: bytes) -> None:
        """Parse one line and hand it to its type's handler."""
        try:
            msg = parse_line(line)
        except BadMessage as exc:
            self.count(BAD_MESSAGE)
            self.log.debug(BAD_MESSAGE, reason=str(exc))
            return
        self.last_heard_wall = time.time()
        await self.handlers[type(msg)](msg)
