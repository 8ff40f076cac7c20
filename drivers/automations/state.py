"""What the rules remember between starts: `for` timers, last firing, the day's count, switches, pending warnings.

Kept as one JSON document (written by the driver through ctx.write_state) so a restart or reload resumes a timer
at the moment it was due, keeps a cooldown running and never forgets a warning waiting for officials.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATE_FILE = "state.json"
VERSION = 1


@dataclass
class Timer:
    """A reading past its level since `since` (wall time); `fired` once it has made the rule fire."""

    since: float
    values: dict[str, Any]
    fired: bool = False


@dataclass
class RuleState:
    last_fired: float | None = None
    last_why: str = ""
    day: str = ""  # local date of `count`
    count: int = 0
    switched: bool | None = None  # enabled/disabled by the console or the COC; None: as configured
    timers: dict[str, Timer] = field(default_factory=dict)
    next_cron: float | None = None
    suppressed: int = 0


@dataclass
class Pending:
    """A warning waiting for officials: the rule's rendered actions and the deadline (wall time)."""

    id: str
    rule: str
    created: float
    deadline: float
    on_timeout: str
    why: str
    values: dict[str, Any]
    text: str  # the first bulletin's spoken text, what officials read before they confirm


@dataclass
class State:
    rules: dict[str, RuleState] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)

    def rule(self, rule_id: str) -> RuleState:
        found = self.rules.get(rule_id)
        if found is None:
            found = self.rules[rule_id] = RuleState()
        return found

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "rules": {k: asdict(v) for k, v in self.rules.items()},
                "pending": {k: asdict(v) for k, v in self.pending.items()}}

    @classmethod
    def from_json(cls, doc: Any, known: set[str]) -> State:
        """The saved document for the rules that still exist; anything unreadable starts afresh (never a crash)."""
        st = cls()
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            return st
        for rid, raw in (doc.get("rules") or {}).items():
            if rid not in known or not isinstance(raw, dict):
                continue
            try:
                timers = {k: Timer(**t) for k, t in (raw.get("timers") or {}).items()}
                st.rules[rid] = RuleState(**{**raw, "timers": timers})
            except TypeError:
                continue
        for pid, raw in (doc.get("pending") or {}).items():
            try:
                p = Pending(**raw)
            except TypeError:
                continue
            if p.rule in known:
                st.pending[pid] = p
        return st
