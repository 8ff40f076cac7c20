"""The `automations` section: local rules (trigger, conditions, actions) that act without waiting for the COC."""

from __future__ import annotations

import re
import string
from datetime import time
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from agent.section import Section, Weekdays, repeated

RULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
# what a template may speak, by trigger kind (plus the ones every rule has)
COMMON_FIELDS = ("rule", "time", "date")
TRIGGER_FIELDS: dict[str, tuple[str, ...]] = {
    "reading": ("device", "source", "reading", "value", "unit", "level"),
    "alarm": ("device", "source", "reading", "value", "unit", "level", "alarm"),
    "camera": ("camera", "kind", "zone"),
    "link": ("link", "previous", "reason", "pct"),
    "time": (),
    "bulletin": ("bulletin", "title", "zone", "outcome", "reason"),
}


def duration_s(v: object) -> float:
    """Seconds from a number or "90s" / "10m" / "2h": what an operator writes for `for:` and cooldowns."""
    if isinstance(v, bool):
        raise ValueError("a duration is a number of seconds or text like 90s, 10m, 2h")
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError("a duration cannot be negative")
        return float(v)
    m = _DURATION.match(str(v))
    if not m:
        raise ValueError(f"not a duration: {v!r} (a number of seconds or text like 90s, 10m, 2h)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


class Window(Section):
    """Local hours "HH:MM-HH:MM"; one that ends before it starts runs over midnight (22:00-05:00)."""

    start: time = Field(description="first minute inside")
    end: time = Field(description="first minute outside")

    @classmethod
    def parse(cls, v: object) -> Window:
        if isinstance(v, Window):
            return v
        m = _WINDOW.match(str(v).replace(" ", ""))
        if not m or int(m.group(1)) > 23 or int(m.group(3)) > 24 or int(m.group(2)) > 59 or int(m.group(4)) > 59:
            raise ValueError(f"hours are written HH:MM-HH:MM, e.g. 22:00-05:00, got {v!r}")
        end = time(0, 0) if int(m.group(3)) == 24 else time(int(m.group(3)), int(m.group(4)))
        return cls(start=time(int(m.group(1)), int(m.group(2))), end=end)

    def contains(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end if self.start != self.end else True
        return t >= self.start or t < self.end


class ReadingTrigger(Section):
    """A sensor reading above or below a level, held for `for` (a reading back on the safe side resets it)."""

    name: str = Field(min_length=1, description="reading name as the sensors family emits it (e.g. water_level)")
    device: Optional[str] = Field(None, description="only this device (tags.device); default: any")
    source: Optional[str] = Field(None, description="only this sensor source (tags.source); default: any")
    above: Optional[float] = Field(None, description="fires when the value is above this level")
    below: Optional[float] = Field(None, description="fires when the value is below this level")
    for_s: float = Field(0.0, alias="for", description="how long the value must stay past the level (90s, 10m)")

    @field_validator("for_s", mode="before")
    @classmethod
    def _for(cls, v: object) -> float:
        return duration_s(v)

    @model_validator(mode="after")
    def _one_level(self) -> ReadingTrigger:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above, below")
        return self

    @property
    def level(self) -> float:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]


class AlarmTrigger(Section):
    """A sensors alarm raised or cleared (the sensors section's `alarms`)."""

    state: Literal["raised", "cleared"] = Field("raised", description="raised or cleared")
    alarm: Optional[str] = Field(None, description="only the alarm rule of this name; default: any")
    device: Optional[str] = Field(None, description="only this device; default: any")
    reading: Optional[str] = Field(None, description="only alarms on this reading; default: any")


class CameraTrigger(Section):
    """A camera event of a kind (person, vehicle, ...), in one camera or zone, within local hours."""

    kind: str = Field(min_length=1, description="event kind as the cameras family emits it (person, vehicle, ...)")
    camera: Optional[str] = Field(None, description="only this camera; default: any")
    zone: Optional[str] = Field(None, description="only events in this zone (data.zone); default: any")
    hours: Optional[Window] = Field(None, description="only within these local hours, e.g. 22:00-05:00")

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, v: object) -> Window | None:
        return None if v is None else Window.parse(v)


class LinkTrigger(Section):
    """The WAN link failing over or back, or a data budget crossing a threshold."""

    kind: Literal["failover", "failback", "budget"] = Field(description="failover, failback or budget")
    link: Optional[str] = Field(None, description="only when this link is the one switched to / budgeted")
    at_pct: Optional[float] = Field(None, ge=0, le=1000, description="budget: only crossings at or above this %")


class TimeTrigger(Section):
    """A local time: a 5-field cron expression in the site's timezone."""

    cron: str = Field(description="minute hour day month weekday, e.g. '0 6 * * *'")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter

        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(f"not a 5-field cron expression: {v!r}")
        return v


class BulletinTrigger(Section):
    """A bulletin aired (played) or failed in a zone (the broadcast family's as-run records)."""

    outcome: Literal["played", "failed", "skipped", "interrupted"] = Field(
        "failed", description="played, failed, skipped or interrupted")
    bulletin: Optional[str] = Field(None, description="only this bulletin id; default: any")


class Trigger(Section):
    """Exactly one kind of trigger."""

    reading: Optional[ReadingTrigger] = Field(None, description="a reading past a level, held `for`")
    alarm: Optional[AlarmTrigger] = Field(None, description="a sensors alarm raised or cleared")
    camera: Optional[CameraTrigger] = Field(None, description="a camera event")
    link: Optional[LinkTrigger] = Field(None, description="a link failover/failback or budget threshold")
    time: Optional[TimeTrigger] = Field(None, description="a local time (cron)")
    bulletin: Optional[BulletinTrigger] = Field(None, description="a bulletin's airing outcome")

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        given = [k for k in TRIGGER_FIELDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one trigger of {', '.join(TRIGGER_FIELDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TRIGGER_FIELDS if getattr(self, k) is not None)


class ReadingCondition(Section):
    """The latest value of another reading is above / below a level (unknown = not met)."""

    name: str = Field(min_length=1, description="reading name")
    device: Optional[str] = Field(None, description="only this device; default: the latest of any")
    above: Optional[float] = Field(None, description="met when the latest value is above this")
    below: Optional[float] = Field(None, description="met when the latest value is below this")

    @model_validator(mode="after")
    def _one_level(self) -> ReadingCondition:
        if self.above is None and self.below is None:
            raise ValueError("give above, below or both")
        return self


class Condition(Section):
    """Every key given must hold for the rule to fire."""

    hours: Optional[Window] = Field(None, description="only within these local hours, e.g. 06:00-21:00")
    weekdays: Optional[Weekdays] = Field(None, min_length=1, description="1=Monday .. 7=Sunday")
    reading: Optional[ReadingCondition] = Field(None, description="another reading's latest value")
    link: Optional[list[str]] = Field(None, min_length=1, description="only while one of these links is in use")

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, v: object) -> Window | None:
        return None if v is None else Window.parse(v)


class BulletinAction(Section):
    """A bulletin spoken from a template: {value}, {device}, {level}... are filled in from what fired the rule."""

    text: str = Field(min_length=1, max_length=4000, description="template of what to say; {value} etc. filled in")
    title: str = Field("", max_length=200, description="template of the bulletin's title (as-run, console)")
    priority: Literal["normal", "high", "emergency"] = Field("high", description="normal, high or emergency")
    zones: Optional[list[str]] = Field(None, min_length=1, description="broadcast zones; default: the default zones")
    repeat: int = Field(1, ge=1, le=20, description="how many times it is played")
    gap_s: float = Field(2.0, ge=0, le=600, description="pause between repeats")


class ChimeAction(Section):
    """A chime alone on the loudspeakers (an attention signal, no words)."""

    zones: Optional[list[str]] = Field(None, min_length=1, description="broadcast zones; default: the default zones")
    priority: Literal["normal", "high", "emergency"] = Field("high", description="normal, high or emergency")


class SignboardAction(Section):
    """A notice on the signboards from a template; each firing replaces the rule's notice, `clear` takes it down."""

    text: str = Field("", max_length=2000, description="template of the notice (needed unless clear)")
    title: str = Field("", max_length=200, description="template of its heading (default: the rule's id)")
    boards: Optional[list[str]] = Field(None, min_length=1, description="only these boards (default: all)")
    id: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the notice's id (default "
                              "auto-<rule id>): a clearing rule names the notice its raising rule put up")
    clear: bool = Field(False, description="take the notice down (a rule on the alarm clearing); nothing up is fine")

    @model_validator(mode="after")
    def _text(self) -> SignboardAction:
        if not self.clear and not self.text.strip():
            raise ValueError("text: a notice needs text (or clear: true)")
        return self


class EventAction(Section):
    """An event of the rule's own kind to the COC (beside the automation_fired record every firing sends)."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="event kind (topic event/{kind})")
    severity: Literal["info", "warning", "critical"] = Field("warning", description="info, warning or critical")
    text: str = Field("", max_length=1000, description="template of a message carried in data.text")


class ClipAction(Section):
    """The triggering camera event's clip uploaded to the COC; without one, a fresh snapshot of `camera`."""

    camera: Optional[str] = Field(None, description="camera for a snapshot when the trigger carries no clip")


class HookAction(Section):
    """A program the operator installed, run without a shell; the values go in its environment (AUTOMATION_*)."""

    argv: list[str] = Field(min_length=1, description="program and arguments (no shell)")
    timeout_s: float = Field(30.0, gt=0, le=600, description="killed (with its children) after this")


ACTION_KINDS = ("bulletin", "chime", "signboard", "event", "clip", "hook")


class Action(Section):
    """Exactly one of the kinds of action."""

    bulletin: Optional[BulletinAction] = Field(None, description="speak a bulletin from a template")
    chime: Optional[ChimeAction] = Field(None, description="a chime alone")
    signboard: Optional[SignboardAction] = Field(None, description="a notice on the signboards (or taken down)")
    event: Optional[EventAction] = Field(None, description="an event to the COC")
    clip: Optional[ClipAction] = Field(None, description="a clip (or snapshot) to the COC")
    hook: Optional[HookAction] = Field(None, description="run an operator's program")

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [k for k in ACTION_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(ACTION_KINDS)}")
        return self


class Confirm(Section):
    """Ask the officials first: the warning waits in the console until confirmed, cancelled or its deadline."""

    timeout_s: float = Field(300.0, ge=5, le=86400, description="how long officials have to decide (300, 5m)")
    on_timeout: Literal["air", "drop"] = Field("air", description="at the deadline: air it, or drop it")

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _timeout(cls, v: object) -> float:
        return duration_s(v)


class Rule(Section):
    """One automation: when the trigger fires and every condition holds, the actions run (within cooldown/cap)."""

    id: str = Field(pattern=RULE_ID, description="unique name; used by the CLI, console and COC commands")
    description: str = Field("", max_length=300, description="what the rule is for, as officials read it")
    enabled: bool = Field(True, description="false: kept but never fires (the console/COC can switch it)")
    trigger: Trigger = Field(description="what starts the rule")
    conditions: list[Condition] = Field(default_factory=list, description="all must hold when it would fire")
    actions: list[Action] = Field(min_length=1, description="run in order")
    confirm: Optional[Confirm] = Field(None, description="ask officials first (console) before acting")
    cooldown_s: float = Field(600.0, ge=0, description="after a firing, none before this many seconds (10m)")
    daily_cap: int = Field(10, ge=1, le=1000, description="at most this many firings per local day")
    mode: Literal["single", "restart", "queued", "parallel"] = Field(
        "single", description="a firing while the last one's actions still run: single (drop it), restart, "
                              "queued (after it) or parallel")
    fire_missed: bool = Field(True, description="a `for` that ran out while the agent was down fires once on start")

    @field_validator("cooldown_s", mode="before")
    @classmethod
    def _cooldown(cls, v: object) -> float:
        return duration_s(v)

    @model_validator(mode="after")
    def _templates(self) -> Rule:
        known = set(TRIGGER_FIELDS[self.trigger.kind]) | set(COMMON_FIELDS)
        for i, action in enumerate(self.actions):
            for text in _texts(action):
                for name in _fields(text):
                    if name not in known:
                        raise ValueError(f"actions.{i}: the template names {{{name}}}, which a {self.trigger.kind} "
                                         f"trigger does not give (it gives: {', '.join(sorted(known))})")
            if action.clip is not None and action.clip.camera is None and self.trigger.kind != "camera":
                raise ValueError(f"actions.{i}: clip needs `camera` unless the trigger is a camera event")
        return self


def _texts(action: Action) -> list[str]:
    if action.bulletin is not None:
        return [action.bulletin.text, action.bulletin.title]
    if action.signboard is not None:
        return [action.signboard.text, action.signboard.title]
    if action.event is not None:
        return [action.event.text]
    return []


def _fields(template: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"template {template[:40]!r}: {exc}") from None


class AutomationsConfig(Section):
    """Local automations: rules that warn residents from sensors, cameras and links without waiting for the COC."""

    enabled: bool = Field(True, description="false: the section is kept but no rule runs")
    rules: list[Rule] = Field(default_factory=list, description="the rules, each with a unique id")
    max_pending: int = Field(20, ge=1, le=500, description="warnings waiting for officials at most; older dropped")

    @model_validator(mode="after")
    def _unique(self) -> AutomationsConfig:
        twice = repeated(r.id for r in self.rules)
        if twice:
            raise ValueError(f"rule ids must be unique: {', '.join(twice)}")
        return self
