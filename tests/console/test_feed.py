"""The status page's feed outlives a restart through its state file; a damaged file never stops the console."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.driver import Event, Reading
from agent.statefile import write_json
from drivers.console.feed import MAX_EVENTS, Feed


def _fed() -> Feed:
    f = Feed()
    f("sensors", (Reading("soil_moisture", 31.5, "%", tags={"source": "m1", "device": "ruong-1"}, ts=1.7e9),))
    f("sensors", (Event("sensor_alarm", {"rule": "kho", "source": "m1", "device": "ruong-1",
                                         "reading": "soil_moisture", "value": 12}, severity="warning"),))
    f("sensors", (Event("sensor_alarm", {"rule": "ngap", "source": "m1", "device": "ruong-2",
                                         "reading": "water_level", "value": 90}, severity="warning"),))
    f("sensors", (Event("sensor_alarm_cleared", {"rule": "ngap", "source": "m1", "device": "ruong-2",
                                                 "reading": "water_level"}),))
    f("cameras", (Event("person", {"camera": "cong", "phase": "start"}),))
    for i in range(MAX_EVENTS + 5):
        f("network", (Event("link_up", {"link": f"wan{i}"}),))
    return f


def test_what_was_seen_comes_back_after_a_restart(tmp_path: Path) -> None:
    before = _fed()
    assert before.changed
    path = tmp_path / "feed.json"
    write_json(path, before.state(), indent=None)
    assert not before.changed
    after = Feed()
    assert after.load(path) is None
    assert list(after.events) == list(before.events) and len(after.events) == MAX_EVENTS
    assert after.readings == before.readings and after.readings[("m1", "ruong-1", "soil_moisture")]["value"] == 31.5
    assert list(after.alarms) == [("kho", "m1", "ruong-1", "soil_moisture")]  # the cleared one stays cleared
    assert [e["kind"] for e in after.camera_events["cong"]] == ["person"]
    assert not after.changed  # nothing new to write yet


def test_a_missing_file_is_a_first_start_and_garbage_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    assert Feed().load(path) is None
    for garbage in (b"\x00\xff{{", b"[]", b'{"version": 2}', b'{"version": 1, "events": "x", "readings": {}}'):
        path.write_bytes(garbage)
        f = Feed()
        reason = f.load(path)
        assert (reason is None) == garbage.startswith(b'{"version": 1'), (garbage, reason)
        assert not f.events and not f.readings and not f.alarms
    path.write_bytes(b" " * (9 << 20))
    assert "larger than" in (Feed().load(path) or "")
    path.unlink()
    path.mkdir()
    assert Feed().load(path)


rows = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
                        st.sampled_from(["id", "ts", "kind", "severity", "source", "data", "device", "name", "value",
                                         "unit", "rule", "reading", "camera", "version", "events", "readings",
                                         "alarms", "camera_events"]), kids, max_size=8), max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(doc=rows)
def test_any_json_in_the_file_is_loaded_or_refused_never_raised(tmp_path_factory: pytest.TempPathFactory,
                                                                doc: Any) -> None:
    path = tmp_path_factory.mktemp("feed") / "feed.json"
    body = {"version": 1, **doc} if isinstance(doc, dict) else doc
    path.write_text(json.dumps(body))
    f = Feed()
    f.load(path)
    # whatever was taken up has the shape the pages render
    for e in list(f.events) + list(f.alarms.values()) + [r for q in f.camera_events.values() for r in q]:
        assert isinstance(e["kind"], str) and isinstance(e["ts"], (int, float)) and isinstance(e["data"], dict)
    for r in f.readings.values():
        assert isinstance(r["name"], str) and isinstance(r["value"], (int, float, str, bool))
    json.dumps(f.state())
