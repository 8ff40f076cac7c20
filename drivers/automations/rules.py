"""The rule engine: what the drivers emitted (or a recording of it) in, firings out, in real or simulated time.

Pure and synchronous: it never acts, sleeps or reads the clock. The driver feeds it the tap and the time and
carries out the firings; the replay feeds it a recording and prints them. So what a rule would do on recorded
data is exactly what it does live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from agent.driver import Emittable, Event, Reading
from drivers.automations.config import Condition, Rule
from drivers.automations.state import RuleState, State, Timer
from drivers.sensors.api import ALARM_CLEARED, ALARM_RAISED

SELF = "automations"  # what this family emits is never a trigger (a rule cannot feed itself)
START_PHASES = (None, "start", "alert")  # a camera event's first word; updates and ends are the same event


@dataclass
class Firing:
    """A rule that fired (or would have, but `suppressed` says why not) at wall time `at`."""

    rule: str
    at: float
    values: dict[str, Any]
    why: str
    suppressed: str | None = None
    missed: bool = False  # a `for` that ran out while the agent was down
    trigger: dict[str, Any] = field(default_factory=dict)  # the triggering event's data (clip ids, ...)


def spoken(v: Any) -> str:
    """A value as Vietnamese reads it: at most two decimals, a comma before them (3,25), no trailing zeros."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


class Engine:
    """Rules by trigger kind (readings by name), the latest readings, the link in use, and the shared State."""

    def __init__(self, rules: Iterable[Rule], tz: ZoneInfo, state: State | None = None) -> None:
        self.rules = {r.id: r for r in rules}
        self.tz = tz
        self.state = state or State()
        self.by_reading: dict[str, dict[str | None, list[Rule]]] = {}  # name -> device (None: any) -> rules
        self.by_kind: dict[str, list[Rule]] = {}
        for r in self.rules.values():
            if r.trigger.reading is not None:
                t = r.trigger.reading
                self.by_reading.setdefault(t.name, {}).setdefault(t.device, []).append(r)
            else:
                self.by_kind.setdefault(r.trigger.kind, []).append(r)
        self.latest: dict[tuple[str, str | None], float] = {}
        self.link: str | None = None
        self.dirty = False  # state changed since the driver last saved it

    # -- switches ---------------------------------------------------------------------------------------------
    def enabled(self, rule: Rule) -> bool:
        switched = self.state.rule(rule.id).switched
        return rule.enabled if switched is None else switched

    def switch(self, rule_id: str, on: bool) -> None:
        rs = self.state.rule(rule_id)
        rs.switched = on
        if not on:
            rs.timers.clear()
        self.dirty = True

    # -- input ------------------------------------------------------------------------------------------------
    def feed(self, source: str, items: Iterable[Emittable], now: float) -> list[Firing]:
        """Everything one emit carried; firings in order."""
        if source == SELF:
            return []
        out: list[Firing] = []
        for item in items:
            if isinstance(item, Reading):
                out += self._reading(item, now)
            elif isinstance(item, Event):
                out += self._event(source, item, now)
        return out

    def _reading(self, r: Reading, now: float) -> list[Firing]:
        v = r.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return []
        tags = r.tags or {}
        device = tags.get("device", "")
        self.latest[(r.name, device)] = float(v)
        self.latest[(r.name, None)] = float(v)
        by_device = self.by_reading.get(r.name)
        if not by_device:
            return []
        out = []
        source = tags.get("source", "")
        key = f"{source}|{device}"
        said: str | None = None
        for rule in (*by_device.get(device, ()), *by_device.get(None, ())):
            t = rule.trigger.reading
            assert t is not None
            rs = self.state.rules.get(rule.id) or self.state.rule(rule.id)
            if (t.source is not None and t.source != source) or not (
                    rule.enabled if rs.switched is None else rs.switched):
                continue
            past = v > t.above if t.above is not None else v < t.level
            timer = rs.timers.get(key)
            if not past:
                if timer is not None:
                    del rs.timers[key]
                    self.dirty = True
                continue
            if timer is not None and timer.fired:
                continue  # fired for this crossing: re-armed once the value is back on the safe side
            if said is None:
                said = spoken(v)
            if timer is None:
                timer = rs.timers[key] = Timer(since=now, values={
                    "device": device, "source": source, "reading": r.name, "value": said, "unit": r.unit or "",
                    "level": spoken(t.level)})
                self.dirty = True
            else:
                timer.values["value"] = said  # the bulletin speaks the value that completed the rule
            if now - timer.since >= t.for_s:
                out.append(self._due(rule, rs, timer, now))
        return out

    def _due(self, rule: Rule, rs: RuleState, timer: Timer, now: float, missed: bool = False) -> Firing:
        t = rule.trigger.reading
        assert t is not None
        timer.fired = True
        side = "above" if t.above is not None else "below"
        held = f" for {timer_s(now - timer.since)}" if t.for_s else ""
        why = f"{timer.values['reading']}={timer.values['value']} {side} {t.level:g}{held} on {timer.values['device']}"
        return self._fire(rule, dict(timer.values), why, now, missed=missed)

    def _event(self, source: str, e: Event, now: float) -> list[Firing]:
        d = e.data or {}
        if source == "network" and e.kind in ("failover", "failback") and isinstance(d.get("to"), str):
            self.link = d["to"]
        out = []
        for kind in _kinds_of(source, e.kind):
            for rule in self.by_kind.get(kind, ()):
                if not self.enabled(rule):
                    continue
                found = _match(rule, e, d, self.tz)
                if found is not None:
                    values, why = found
                    out.append(self._fire(rule, values, why, now, trigger=d))
        return out

    # -- time -------------------------------------------------------------------------------------------------
    def start(self, now: float) -> list[Firing]:
        """After a start or reload: a `for` that ran out while down fires once (if the rule says so), cron
        times are set from now on."""
        out = []
        for rule in self.rules.values():
            rs = self.state.rule(rule.id)
            t = rule.trigger.reading
            if t is not None:
                for timer in rs.timers.values():
                    if not timer.fired and now - timer.since >= t.for_s and self.enabled(rule):
                        if rule.fire_missed:
                            out.append(self._due(rule, rs, timer, now, missed=True))
                        else:
                            timer.fired = True
                            self.dirty = True
            if rule.trigger.time is not None and (rs.next_cron is None or rs.next_cron < now):
                rs.next_cron = self._next_cron(rule, now)
                self.dirty = True
        return out

    def tick(self, now: float) -> list[Firing]:
        """Timers and cron times that are due by `now`."""
        out = []
        for rule in self.rules.values():
            rs = self.state.rule(rule.id)
            t = rule.trigger.reading
            if t is not None and rs.timers:
                for timer in rs.timers.values():
                    if not timer.fired and now - timer.since >= t.for_s and self.enabled(rule):
                        out.append(self._due(rule, rs, timer, now))
            if rule.trigger.time is not None and rs.next_cron is not None and now >= rs.next_cron:
                due = rs.next_cron
                rs.next_cron = self._next_cron(rule, now)
                self.dirty = True
                if self.enabled(rule):
                    out.append(self._fire(rule, {}, f"time {rule.trigger.time.cron} ({_local(due, self.tz)})", now))
        return out

    def next_wake(self) -> float | None:
        """The earliest wall time a timer or cron time falls due; None when nothing waits."""
        soon: float | None = None
        for rule in self.rules.values():
            rs = self.state.rules.get(rule.id)
            if rs is None:
                continue
            t = rule.trigger.reading
            if t is not None:
                for timer in rs.timers.values():
                    if not timer.fired:
                        soon = _min(soon, timer.since + t.for_s)
            if rs.next_cron is not None:
                soon = _min(soon, rs.next_cron)
        return soon

    def _next_cron(self, rule: Rule, now: float) -> float:
        from croniter import croniter

        assert rule.trigger.time is not None
        return float(croniter(rule.trigger.time.cron, datetime.fromtimestamp(now, self.tz)).get_next(float))

    # -- the gate ---------------------------------------------------------------------------------------------
    def _fire(self, rule: Rule, values: dict[str, Any], why: str, now: float, *, missed: bool = False,
              trigger: dict[str, Any] | None = None) -> Firing:
        rs = self.state.rule(rule.id)
        local = datetime.fromtimestamp(now, self.tz)
        day = local.date().isoformat()
        values = {**values, "rule": rule.id, "time": local.strftime("%H:%M"), "date": local.strftime("%d/%m/%Y")}
        reason = self._unmet(rule, local)
        if reason is None and rs.last_fired is not None and now - rs.last_fired < rule.cooldown_s:
            reason = "cooldown"
        if reason is None and rs.day == day and rs.count >= rule.daily_cap:
            reason = "daily_cap"
        self.dirty = True
        if reason is not None:
            rs.suppressed += 1
            return Firing(rule.id, now, values, why, reason, missed, trigger or {})
        rs.last_fired, rs.last_why = now, why
        rs.count = rs.count + 1 if rs.day == day else 1
        rs.day = day
        return Firing(rule.id, now, values, why, None, missed, trigger or {})

    def _unmet(self, rule: Rule, local: datetime) -> str | None:
        for c in rule.conditions:
            reason = self._condition(c, local)
            if reason is not None:
                return reason
        return None

    def _condition(self, c: Condition, local: datetime) -> str | None:
        if c.hours is not None and not c.hours.contains(local.time()):
            return "condition:hours"
        if c.weekdays is not None and local.isoweekday() not in c.weekdays:
            return "condition:weekdays"
        if c.link is not None and self.link not in c.link:
            return "condition:link"
        if c.reading is not None:
            v = self.latest.get((c.reading.name, c.reading.device))
            if v is None or (c.reading.above is not None and not v > c.reading.above) or (
                    c.reading.below is not None and not v < c.reading.below):
                return "condition:reading"
        return None

    def next_possible(self, rule: Rule, now: float) -> float | None:
        """When a firing would next pass the cooldown and the cap (None: now)."""
        rs = self.state.rules.get(rule.id)
        if rs is None or rs.last_fired is None:
            return None
        at = rs.last_fired + rule.cooldown_s
        if rs.day == datetime.fromtimestamp(now, self.tz).date().isoformat() and rs.count >= rule.daily_cap:
            tomorrow = datetime.fromtimestamp(now, self.tz).replace(hour=0, minute=0, second=0, microsecond=0)
            at = max(at, tomorrow.timestamp() + 86400)
        return at if at > now else None


def _kinds_of(source: str, kind: str) -> tuple[str, ...]:
    """Which trigger kinds an event from `source` can start."""
    if source == "sensors" and kind in (ALARM_RAISED, ALARM_CLEARED):
        return ("alarm",)
    if source == "cameras":
        return ("camera",)
    if source == "network" and kind in ("failover", "failback", "data_budget"):
        return ("link",)
    if source == "broadcast" and kind == "asrun":
        return ("bulletin",)
    return ()


def _match(rule: Rule, e: Event, d: dict[str, Any], tz: ZoneInfo) -> tuple[dict[str, Any], str] | None:
    """(template values, why) when the event is what the rule's trigger waits for."""
    trig = rule.trigger
    if trig.alarm is not None:
        a = trig.alarm
        if (e.kind == ALARM_RAISED) != (a.state == "raised") or (a.alarm and d.get("rule") != a.alarm) or (
                a.device and d.get("device") != a.device) or (a.reading and d.get("reading") != a.reading):
            return None
        values = {"device": d.get("device", ""), "source": d.get("source", ""), "reading": d.get("reading", ""),
                  "value": spoken(d.get("value")), "unit": d.get("unit") or "", "level": spoken(d.get("threshold")),
                  "alarm": d.get("rule", "")}
        return values, f"alarm {d.get('rule')} {a.state} on {d.get('device')} ({d.get('reading')}={d.get('value')})"
    if trig.camera is not None:
        c = trig.camera
        if e.kind != c.kind or d.get("phase") not in START_PHASES or (c.camera and d.get("camera") != c.camera) or (
                c.zone and d.get("zone") != c.zone):
            return None
        if c.hours is not None and not c.hours.contains(datetime.fromtimestamp(e.ts, tz).time()):
            return None
        values = {"camera": d.get("camera", ""), "kind": e.kind, "zone": d.get("zone") or ""}
        return values, f"{e.kind} on camera {d.get('camera')}" + (f" in zone {d['zone']}" if d.get("zone") else "")
    if trig.link is not None:
        lt = trig.link
        if lt.kind == "budget":
            pct = d.get("pct")
            if e.kind != "data_budget" or (lt.link and d.get("link") != lt.link) or (
                    lt.at_pct is not None and not (isinstance(pct, (int, float)) and pct >= lt.at_pct)):
                return None
            return ({"link": d.get("link", ""), "previous": "", "reason": "budget", "pct": spoken(pct)},
                    f"data budget of {d.get('link')} at {pct}%")
        if e.kind != lt.kind or (lt.link and d.get("to") != lt.link):
            return None
        return ({"link": d.get("to", ""), "previous": d.get("from") or "", "reason": d.get("reason", ""), "pct": ""},
                f"{e.kind} from {d.get('from')} to {d.get('to')}")
    if trig.bulletin is not None:
        b = trig.bulletin
        if d.get("outcome") != b.outcome or (b.bulletin and d.get("bulletin_id") != b.bulletin):
            return None
        if str(d.get("bulletin_id", "")).startswith(f"auto-{rule.id}-"):
            return None  # a rule's own airing never starts it again
        values = {"bulletin": d.get("bulletin_id", ""), "title": d.get("title", ""), "zone": d.get("zone", ""),
                  "outcome": d.get("outcome", ""), "reason": d.get("reason") or ""}
        return values, f"bulletin {d.get('bulletin_id')} {d.get('outcome')} in zone {d.get('zone')}"
    return None


def timer_s(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _local(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")


def _min(a: float | None, b: float) -> float:
    return b if a is None or b < a else a
