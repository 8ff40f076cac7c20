"""What is on air now, per zone. Each start and end goes out as an `on_air` event: the COC sees it, and a family
that shows it (signboards) hears it at once through the supervisor's tap; the live state keeps the zones on air
for a family that starts in the middle of an airing."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

from agent.driver import Context, Emittable, Event

EVENT = "on_air"


@dataclass(frozen=True)
class OnAir:
    """One bulletin being aired on one zone; `starts` is its wall-clock start (it may still lie a moment ahead).
    `text` is kept for emergencies only: the boards show it, and nothing else needs the words twice."""

    zone: str
    bulletin_id: str
    title: str
    priority: str
    starts: float
    text: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> OnAir | None:
        """One from an event's or the live state's JSON; None for anything that is not one."""
        if not isinstance(d, dict):
            return None
        try:
            text = d.get("text")
            return cls(str(d["zone"]), str(d["bulletin_id"]), str(d.get("title") or ""), str(d["priority"]),
                       float(d["starts"]), text if isinstance(text, str) else None)
        except (KeyError, TypeError, ValueError):
            return None


def from_items(items: tuple[Emittable, ...]) -> list[tuple[Literal["start", "end"], OnAir]]:
    """The on-air changes among items a tap saw."""
    out: list[tuple[Literal["start", "end"], OnAir]] = []
    for item in items:
        if isinstance(item, Event) and item.kind == EVENT and item.data.get("phase") in ("start", "end"):
            airing = OnAir.from_json(item.data)
            if airing is not None:
                out.append((item.data["phase"], airing))
    return out


class OnAirZones:
    """The zones on air; `changed` is told after each change (the driver writes its live state then)."""

    def __init__(self, ctx: Context, changed: Callable[[], None]) -> None:
        self.ctx = ctx
        self.changed = changed
        self.now: dict[str, OnAir] = {}
        self._sending: set[asyncio.Task[bool]] = set()

    def began(self, airing: OnAir) -> None:
        self.now[airing.zone] = airing
        self._tell("start", airing)

    def ended(self, zone: str) -> None:
        airing = self.now.pop(zone, None)
        if airing is not None:
            self._tell("end", airing)

    def end_left_over(self, last_state: Any) -> None:
        """Airings the last run's live state left on air (a power cut mid-bulletin) end now, so no board keeps
        showing them."""
        previous = last_state.get("on_air") if isinstance(last_state, dict) else None
        for d in previous if isinstance(previous, list) else []:
            airing = OnAir.from_json(d)
            if airing is not None and airing.zone not in self.now:
                self.ctx.log.info("on_air_left_over_ended", zone=airing.zone, bulletin=airing.bulletin_id)
                self._tell("end", airing)

    def state(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in sorted(self.now.values(), key=lambda a: a.starts)]

    def _tell(self, phase: str, airing: OnAir) -> None:
        self.changed()
        data = {**asdict(airing), "phase": phase}
        if airing.text is None:
            del data["text"]
        severity = "warning" if airing.priority == "emergency" else "info"
        task = asyncio.get_running_loop().create_task(self.ctx.emit(Event(EVENT, data, severity)))  # type: ignore[arg-type]
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
