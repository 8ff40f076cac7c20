"""The engine on a clock the test owns: `for`, flapping, cooldown, cap, conditions, state across a restart."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from agent.driver import Event, Reading
from drivers.automations.config import AutomationsConfig, Rule
from drivers.automations.rules import Engine, spoken
from drivers.automations.state import State

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 11, 20, 1, 0, tzinfo=TZ).timestamp()  # 01:00 local, a Friday
FLOOD_TEXT = "Mực nước sông {device} đã lên {value} mét, vượt mức báo động {level}"


def rule(**over: Any) -> Rule:
    base: dict[str, Any] = {"id": "flood", "trigger": {"reading": {"name": "water_level", "device": "river-1",
                                                                    "above": 3.0, "for": "10m"}},
                            "actions": [{"bulletin": {"text": FLOOD_TEXT, "priority": "emergency"}}],
                            "cooldown_s": "30m"}
    base.update(over)
    return AutomationsConfig.model_validate({"rules": [base]}).rules[0]


def level(v: float, ts: float, device: str = "river-1") -> Reading:
    return Reading("water_level", v, "m", ts, {"source": "river-bus", "device": device})


def fired(firings: list[Any]) -> list[Any]:
    return [f for f in firings if f.suppressed is None]


def test_a_level_held_for_its_duration_fires_once_with_the_value_spoken() -> None:
    e = Engine([rule()], TZ)
    assert e.feed("sensors", [level(3.42, T0)], T0) == []
    assert e.next_wake() == T0 + 600
    assert e.feed("sensors", [level(3.47, T0 + 300)], T0 + 300) == []
    assert e.tick(T0 + 599) == []
    [f] = e.tick(T0 + 600)
    assert f.suppressed is None and f.values["value"] == "3,47" and f.values["level"] == "3"
    assert f.values["device"] == "river-1" and "for 10m00s" in f.why
    # staying above does not fire again; another device is another timer
    assert e.feed("sensors", [level(3.6, T0 + 700)], T0 + 700) == [] and e.tick(T0 + 2000) == []
    assert e.feed("sensors", [level(9, T0, device="river-2")], T0) == []


def test_a_flapping_reading_never_completes_for_and_fires_at_most_once_per_cooldown() -> None:
    slow = Engine([rule()], TZ)
    out = []
    for i in range(40):  # above for 5 minutes, below for a moment: never 10 minutes in a row
        t = T0 + i * 310
        out += slow.feed("sensors", [level(3.2 if i % 2 == 0 else 2.9, t)], t) + slow.tick(t)
    assert fired(out) == []
    quick = Engine([rule(trigger={"reading": {"name": "water_level", "above": 3.0}})], TZ)
    out = []
    for i in range(120):  # crossing every minute for two hours, the level needs no `for`
        t = T0 + i * 60
        out += quick.feed("sensors", [level(3.2 if i % 2 == 0 else 2.9, t)], t)
    times = [f.at for f in fired(out)]
    assert len(times) == 4 and all(b - a >= 1800 for a, b in zip(times, times[1:]))
    assert {f.suppressed for f in out} == {None, "cooldown"}


def test_the_daily_cap_and_conditions_hold_a_firing_back() -> None:
    e = Engine([rule(trigger={"reading": {"name": "water_level", "above": 3.0}}, cooldown_s=0, daily_cap=2,
                     conditions=[{"hours": "00:00-06:00"}, {"reading": {"name": "rain", "above": 10}}])], TZ)
    assert e.feed("sensors", [level(3.5, T0)], T0)[0].suppressed == "condition:reading"
    e.feed("sensors", [Reading("rain", 25.0, "mm", T0, {"device": "gauge"})], T0)
    out = []
    for i in range(1, 6):
        t = T0 + i * 10
        out += e.feed("sensors", [level(2.0, t), level(3.5, t + 1)], t + 1)
    assert [f.suppressed for f in out] == [None, None, "daily_cap", "daily_cap", "daily_cap"]
    late = T0 + 6 * 3600  # 07:00: outside the hours
    assert e.feed("sensors", [level(2.0, late), level(3.5, late)], late)[0].suppressed == "condition:hours"


def test_a_timer_survives_a_restart_and_one_that_ran_out_while_down_fires_once() -> None:
    r = rule()
    e = Engine([r], TZ)
    e.feed("sensors", [level(3.4, T0)], T0)
    saved = json.loads(json.dumps(e.state.to_json()))
    # back 4 minutes later: the timer is still due at T0 + 600, not 10 minutes after the start
    again = Engine([r], TZ, State.from_json(saved, {"flood"}))
    assert again.start(T0 + 240) == [] and again.next_wake() == T0 + 600
    assert len(fired(again.tick(T0 + 600))) == 1
    # down past the deadline: one firing on start, marked as missed, and none after
    late = Engine([r], TZ, State.from_json(saved, {"flood"}))
    [f] = late.start(T0 + 900)
    assert f.missed and f.suppressed is None
    assert late.tick(T0 + 901) == [] and late.start(T0 + 902) == []
    # a rule that says not to: no firing, and the timer does not fire later either
    quiet = Engine([rule(fire_missed=False)], TZ, State.from_json(saved, {"flood"}))
    assert quiet.start(T0 + 900) == [] and quiet.tick(T0 + 1000) == []


def test_a_cooldown_survives_a_restart() -> None:
    r = rule(trigger={"reading": {"name": "water_level", "above": 3.0}})
    e = Engine([r], TZ)
    assert len(fired(e.feed("sensors", [level(3.4, T0)], T0))) == 1
    again = Engine([r], TZ, State.from_json(json.loads(json.dumps(e.state.to_json())), {"flood"}))
    again.start(T0 + 60)
    again.feed("sensors", [level(2.0, T0 + 60)], T0 + 60)
    assert again.feed("sensors", [level(3.4, T0 + 61)], T0 + 61)[0].suppressed == "cooldown"
    assert again.next_possible(r, T0 + 61) == T0 + 1800


def test_camera_link_alarm_bulletin_and_time_triggers() -> None:
    cfg = AutomationsConfig.model_validate({"rules": [
        {"id": "night", "trigger": {"camera": {"kind": "person", "camera": "gate", "hours": "22:00-05:00"}},
         "actions": [{"chime": {}}], "cooldown_s": 0},
        {"id": "fo", "trigger": {"link": {"kind": "failover", "link": "wan-4g"}}, "actions": [{"chime": {}}]},
        {"id": "budget", "trigger": {"link": {"kind": "budget", "at_pct": 90}}, "actions": [{"chime": {}}]},
        {"id": "dry", "trigger": {"alarm": {"state": "cleared"}}, "actions": [{"chime": {}}]},
        {"id": "failed", "trigger": {"bulletin": {"outcome": "failed"}}, "actions": [{"chime": {}}]},
        {"id": "six", "trigger": {"time": {"cron": "0 6 * * *"}}, "actions": [{"chime": {}}],
         "conditions": [{"link": ["wan-4g"]}]},
    ]})
    e = Engine(cfg.rules, TZ)
    e.start(T0)

    def ids(source: str, ev: Event) -> list[str]:
        return [f.rule for f in fired(e.feed(source, [ev], ev.ts))]

    assert ids("cameras", Event("person", {"camera": "gate", "phase": "start"}, ts=T0)) == ["night"]
    assert ids("cameras", Event("person", {"camera": "gate", "phase": "end"}, ts=T0)) == []
    assert ids("cameras", Event("person", {"camera": "gate", "phase": "start"}, ts=T0 + 8 * 3600)) == []  # 09:00
    assert ids("cameras", Event("vehicle", {"camera": "gate", "phase": "start"}, ts=T0)) == []
    assert ids("network", Event("failover", {"from": "wan-fiber", "to": "wan-4g"}, ts=T0)) == ["fo"]
    assert ids("network", Event("data_budget", {"link": "wan-4g", "pct": 80.0}, ts=T0)) == []
    assert ids("network", Event("data_budget", {"link": "wan-4g", "pct": 95.0}, ts=T0)) == ["budget"]
    assert ids("sensors", Event("sensor_alarm", {"rule": "soil-dry"}, ts=T0)) == []
    assert ids("sensors", Event("sensor_alarm_cleared", {"rule": "soil-dry"}, ts=T0)) == ["dry"]
    assert ids("broadcast", Event("asrun", {"outcome": "played", "bulletin_id": "b"}, ts=T0)) == []
    assert ids("broadcast", Event("asrun", {"outcome": "failed", "bulletin_id": "b"}, ts=T0)) == ["failed"]
    assert ids("automations", Event("person", {"camera": "gate"}, ts=T0)) == []  # never its own emits
    six = datetime(2026, 11, 20, 6, 0, tzinfo=TZ).timestamp()
    assert e.next_wake() == six and [f.rule for f in fired(e.tick(six))] == ["six"]  # the link is now wan-4g


def test_switching_a_rule_off_stops_its_timers() -> None:
    e = Engine([rule()], TZ)
    e.feed("sensors", [level(3.4, T0)], T0)
    e.switch("flood", False)
    assert e.tick(T0 + 700) == [] and e.feed("sensors", [level(3.4, T0 + 701)], T0 + 701) == []
    e.switch("flood", True)
    e.feed("sensors", [level(3.4, T0 + 800)], T0 + 800)
    assert len(fired(e.tick(T0 + 1400))) == 1


@pytest.mark.parametrize(("rules", "error"), [
    ([{"id": "a", "trigger": {"camera": {"kind": "person"}}, "actions": [{"bulletin": {"text": "{value}"}}]}],
     "does not give"),
    ([{"id": "a", "trigger": {"reading": {"name": "x", "above": 1, "below": 0}}, "actions": [{"chime": {}}]}],
     "exactly one of above, below"),
    ([{"id": "a", "trigger": {"reading": {"name": "x", "above": 1, "for": "soon"}}, "actions": [{"chime": {}}]}],
     "not a duration"),
    ([{"id": "a", "trigger": {"time": {"cron": "61 * * * *"}}, "actions": [{"chime": {}}]}], "cron"),
    ([{"id": "a", "trigger": {"link": {"kind": "failover"}}, "actions": [{"clip": {}}]}], "clip needs `camera`"),
    ([{"id": "a", "trigger": {"link": {"kind": "failover"}}, "actions": [{"signboard": {"title": "x"}}]}],
     "a notice needs text"),
    ([{"id": "a", "trigger": {"link": {"kind": "failover"}}, "actions": [{"signboard": {"text": "{value}"}}]}],
     "does not give"),
    ([{"id": "a", "trigger": {"link": {"kind": "failover"}}, "actions": [{"chime": {}}]}] * 2, "unique"),
    ([{"id": "a", "trigger": {"camera": {"kind": "person", "hours": "25:00-01:00"}}, "actions": [{"chime": {}}]}],
     "HH:MM-HH:MM"),
])
def test_a_bad_rule_is_refused_with_its_reason(rules: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        AutomationsConfig.model_validate({"rules": rules})


def test_values_are_spoken_the_vietnamese_way() -> None:
    assert [spoken(3.0), spoken(3.456), spoken(12), spoken(-0.5), spoken("x")] == ["3", "3,46", "12", "-0,5", "x"]
