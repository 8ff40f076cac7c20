"""Recorded telemetry and events through one rule in simulated time: what would have fired when, without acting.

Two recordings are read: what the agent sent as the COC's broker saw it (`mosquitto_sub -v -t 'commune/v1/<site>/#'`
lines "topic payload", or JSON lines {"topic", "payload"}), and a CSV of readings (ts,name,value[,device,source,
unit]; ts as epoch seconds or local ISO time).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from agent.driver import Emittable, Event, Reading
from drivers.automations.actions import spoken_text
from drivers.automations.config import Rule
from drivers.automations.rules import Engine, Firing


class ReplayError(ValueError):
    """A recording that cannot be read; one line naming the file and line."""


@dataclass
class Item:
    ts: float
    source: str
    item: Emittable


def read_recording(path: Path, tz: ZoneInfo) -> list[Item]:
    """Every reading and event of the file, in time order (a stable sort: equal times keep the file's order)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: cannot read: {exc}") from None
    first = text.lstrip()[:1]
    items = list(_messages(path, text) if first in ("{", "c") or "/" in text.split("\n", 1)[0].split(" ", 1)[0]
                 else _csv(path, text, tz))
    items.sort(key=lambda i: i.ts)
    return items


def _messages(path: Path, text: str) -> Iterator[Item]:
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("{"):
                doc = json.loads(line)
                topic, payload = doc["topic"], doc["payload"]
                payload = json.loads(payload) if isinstance(payload, str) else payload
            else:
                topic, _, raw = line.partition(" ")
                payload = json.loads(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ReplayError(f"{path}:{n}: not a recorded message ({exc})") from None
        yield from _of_message(topic, payload)


def _of_message(topic: str, payload: Any) -> Iterator[Item]:
    parts = topic.split("/")
    if len(parts) < 5 or not isinstance(payload, dict):
        return
    channel, name = parts[3], parts[4]
    if channel == "telemetry":
        shared = payload.get("ts")
        for r in payload.get("readings") or []:
            ts = r.get("ts", shared)
            if isinstance(ts, (int, float)) and isinstance(r.get("name"), str):
                yield Item(float(ts), name, Reading(r["name"], r.get("value"), r.get("unit"), float(ts),
                                                    dict(r.get("tags") or {})))
    elif channel == "event" and isinstance(payload.get("ts"), (int, float)):
        ts = float(payload["ts"])
        yield Item(ts, str(payload.get("source") or ""),
                   Event(name, dict(payload.get("data") or {}), payload.get("severity", "info"),
                         str(payload.get("source") or ""), str(payload.get("id") or ""), ts))


def _csv(path: Path, text: str, tz: ZoneInfo) -> Iterator[Item]:
    rows = csv.DictReader(text.splitlines())
    missing = {"ts", "name", "value"} - set(rows.fieldnames or ())
    if missing:
        raise ReplayError(f"{path}: the CSV needs columns ts, name, value (missing: {', '.join(sorted(missing))})")
    for n, row in enumerate(rows, 2):
        try:
            ts = _ts(row["ts"], tz)
            value = float(row["value"])
        except ValueError as exc:
            raise ReplayError(f"{path}:{n}: {exc}") from None
        tags = {k: row[k] for k in ("source", "device") if row.get(k)}
        yield Item(ts, "sensors", Reading(row["name"], value, row.get("unit") or None, ts, tags))


def _ts(raw: str, tz: ZoneInfo) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"ts {raw!r} is neither epoch seconds nor an ISO time") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=tz)).timestamp()


def replay(rule: Rule, items: list[Item], tz: ZoneInfo, link: str | None = None) -> list[Firing]:
    """The rule's firings and suppressions over the recording, timers run on the recording's own clock."""
    engine = Engine([rule.model_copy(update={"enabled": True})], tz)
    engine.link = link
    if not items:
        return []
    out = engine.start(items[0].ts)
    for it in items:
        out += _until(engine, it.ts)
        out += engine.feed(it.source, (it.item,), it.ts)
    return out + _until(engine, items[-1].ts)


def _until(engine: Engine, now: float) -> list[Firing]:
    out: list[Firing] = []
    while (due := engine.next_wake()) is not None and due <= now:
        fired = engine.tick(due)
        if not fired:
            break
        out += fired
    return out


def describe(rule: Rule, f: Firing, tz: ZoneInfo) -> str:
    """One line per firing: local time, what happened, why, and what it would say."""
    when = datetime.fromtimestamp(f.at, tz).strftime("%Y-%m-%d %H:%M:%S")
    if f.suppressed is not None:
        return f"{when}  suppressed ({f.suppressed})  {f.why}"
    ask = f"  ask officials, {rule.confirm.on_timeout} after {rule.confirm.timeout_s:g}s" if rule.confirm else ""
    return f"{when}  fire  {f.why}{ask}  => {spoken_text(rule, f.values)}"
