"""How readings, events, snapshots and clip pieces become spool records (topics and JSON bodies)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable

from agent.driver import ClipChunk, Emittable, Event, Priority, Reading, Snapshot
from agent.spool import Record

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def topic_safe(segment: str) -> str:
    """A single topic level: no wildcards, no separators, never empty."""
    return _UNSAFE.sub("_", segment)[:64] or "_"


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities become null so the COC always gets valid JSON."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str).encode()
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"), ensure_ascii=False, default=str).encode()


def reading_dict(r: Reading, with_ts: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.name, "value": r.value}
    if with_ts:
        out["ts"] = round(r.ts, 3)
    if r.unit:
        out["unit"] = r.unit
    if r.tags:
        out["tags"] = r.tags
    return out


def event_dict(ev: Event) -> dict[str, Any]:
    return {"id": ev.id, "ts": round(ev.ts, 3), "kind": ev.kind, "severity": ev.severity, "source": ev.source,
            "data": ev.data}


def to_records(source: str, items: Iterable[Emittable], historical: bool) -> list[Record]:
    """Readings of one call share one telemetry message; each event and snapshot is its own."""
    readings: list[Reading] = []
    records: list[Record] = []
    for item in items:
        if isinstance(item, Reading):
            readings.append(item)
        elif isinstance(item, Event):
            if not item.source:
                item.source = source
            records.append(Record(f"event/{topic_safe(item.kind)}", to_json(event_dict(item)), int(item.priority),
                                  True, historical))
        elif isinstance(item, Snapshot):
            records.append(Record(f"snapshot/{topic_safe(item.camera)}/{topic_safe(item.event_id)}", bytes(item.jpeg),
                                  int(item.priority), False, historical))
        elif isinstance(item, ClipChunk):
            records.append(Record(f"clip/{topic_safe(item.camera)}/{topic_safe(item.clip_id)}/{int(item.offset)}",
                                  bytes(item.data), int(item.priority), False, historical))
        else:
            raise TypeError(f"cannot emit {type(item).__name__}")
    if readings:
        stamps = {round(r.ts, 3) for r in readings}
        if len(stamps) == 1:  # one measurement round: its time once, not once per reading
            body = to_json({"ts": stamps.pop(), "readings": [reading_dict(r, with_ts=False) for r in readings]})
        else:
            body = to_json({"readings": [reading_dict(r) for r in readings]})
        records.insert(0, Record(f"telemetry/{topic_safe(source)}", body, int(Priority.TELEMETRY), True, historical))
    return records
