"""Threshold alarms (hysteresis, minimum duration, device filters) and staleness, on a synthetic clock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.driver import Priority, Reading
from drivers.sensors.alarms import AlarmEngine, Staleness
from drivers.sensors.config import AlarmRule


def _r(value: float, name: str = "soil_moisture", device: str = "soil-1") -> list[Reading]:
    return [Reading(name, value, "%", tags={"source": "bus", "device": device})]


def _kinds(events: list) -> list[tuple[str, str]]:
    return [(e.kind, e.data["direction"]) for e in events]


def test_hysteresis_band_prevents_flapping() -> None:
    eng = AlarmEngine([AlarmRule(reading="soil_moisture", low=20, high=80, hysteresis=5)])
    out = []
    for t, v in enumerate([50, 81, 79, 76, 81, 74, 19, 22, 24, 26, 50]):
        out += eng.feed(_r(v), float(t))
    assert _kinds(out) == [("sensor_alarm", "high"), ("sensor_alarm_cleared", "high"),
                           ("sensor_alarm", "low"), ("sensor_alarm_cleared", "low")]
    raised = out[0]
    assert raised.priority == Priority.ALARM and raised.severity == "warning"
    assert raised.data["value"] == 81 and raised.data["threshold"] == 80 and raised.data["device"] == "soil-1"
    assert out[1].data["value"] == 74 and out[1].severity == "info" and out[1].priority == Priority.ALARM


def test_minimum_duration_ignores_short_excursions() -> None:
    eng = AlarmEngine([AlarmRule(reading="soil_*", high=30, min_duration_s=10, severity="critical")])
    assert eng.feed(_r(31, "soil_temperature"), 0.0) == []
    assert eng.feed(_r(35, "soil_temperature"), 9.0) == []
    assert eng.feed(_r(29, "soil_temperature"), 9.5) == []  # back below before 10 s: nothing
    assert eng.feed(_r(31, "soil_temperature"), 20.0) == []
    assert eng.feed(_r(32, "soil_temperature"), 25.0) == []
    assert eng.tick(29.9) == []
    events = eng.tick(30.0)  # 10 s above without a new reading: raised by the periodic tick
    assert _kinds(events) == [("sensor_alarm", "high")] and events[0].severity == "critical"
    assert eng.feed(_r(33, "soil_temperature"), 31.0) == []  # already raised: not repeated
    assert _kinds(eng.feed(_r(20, "soil_temperature"), 32.0)) == [("sensor_alarm_cleared", "high")]


def test_device_filter_and_independent_devices() -> None:
    eng = AlarmEngine([AlarmRule(reading="level", device="tank-*", high=100)])
    assert eng.feed(_r(150, "level", "pond"), 0.0) == []
    events = eng.feed(_r(150, "level", "tank-a") + _r(90, "level", "tank-b") + _r(101, "level", "tank-c"), 1.0)
    assert sorted(e.data["device"] for e in events) == ["tank-a", "tank-c"]
    assert eng.feed([Reading("level", True, tags={"device": "tank-d"})], 2.0) == []  # booleans are not compared


def test_rule_validation() -> None:
    with pytest.raises(ValidationError, match="low.*high"):
        AlarmRule(reading="x")
    with pytest.raises(ValidationError, match="hysteresis"):
        AlarmRule(reading="x", low=10, high=12, hysteresis=3)


def test_staleness_goes_stale_and_fresh_once() -> None:
    st = Staleness()
    st.expect("bus", "soil-1", 60, now=0.0)
    assert st.seen("mqtt", "station", 30, now=0.0) is None
    assert st.check(29.0) == []
    events = st.check(30.0)
    assert [(e.kind, e.data["device"]) for e in events] == [("sensor_stale", "station")]
    assert st.check(31.0) == []  # not repeated
    assert [e.data["device"] for e in st.check(60.0)] == ["soil-1"]  # configured, never reported
    fresh = st.seen("mqtt", "station", 30, now=61.0)
    assert fresh is not None and fresh.kind == "sensor_fresh"
    assert st.seen("mqtt", "station", 30, now=62.0) is None
    assert st.stale_devices() == ["bus/soil-1"]
    st.seen("mqtt", "nostale", 0, now=0.0)
    assert all(e.data["device"] != "nostale" for e in st.check(10_000.0))
