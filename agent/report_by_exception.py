"""Report by exception: a reading goes to the COC when it moved beyond its deadband, or at least every
heartbeat — a value that sits still costs nothing on a metered link. Local consumers (alarms, automations,
the console) still see every reading; only what is stored for the COC is thinned."""

from __future__ import annotations

import fnmatch
import math
import time
from collections import OrderedDict
from typing import Any, Callable

from pydantic import Field

from agent.driver import Emittable, Reading
from agent.section import Section

MAX_KEYS = 20_000  # distinct readings remembered; the least recently sent is forgotten (then sent again)


class TelemetryConfig(Section):
    """Report by exception: readings that did not change are not sent again until their heartbeat."""

    report_by_exception: bool = Field(True, description="false sends every reading as the drivers emit it")
    heartbeat_s: float = Field(900.0, ge=10, le=86400, description="every reading is sent at least this often, "
                                                                    "changed or not")
    deadband_pct: float = Field(5.0, ge=0, le=100, description="a measured number (a float, or any number with a "
                                                               "unit) without an absolute deadband is sent when it "
                                                               "moved more than this % of the value last sent; a "
                                                               "count or state without a unit on every change")
    deadband_by_unit: dict[str, float] = Field(
        default_factory=lambda: {"ms": 5.0, "%": 1.0, "°C": 0.5, "C": 0.5, "fps": 1.0, "V": 0.1, "pH": 0.1,
                                 "dBm": 3.0, "B": 0.0, "s": 0.0},
        description="absolute deadband by unit: a number moving less than this is not news (0 = relative only)")
    deadband: dict[str, float] = Field(
        default_factory=dict, description="absolute deadband by reading name (shell patterns, e.g. "
                                          "{probe_rtt_*: 10, soil_moisture: 2}); wins over the unit's")


class ReportByException:
    """Remembers what was last sent per (source, name, tags) and drops readings that add nothing."""

    def __init__(self, cfg: TelemetryConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self._clock = clock
        self._sent: OrderedDict[tuple[Any, ...], tuple[Any, float]] = OrderedDict()
        self.held = 0  # readings not sent because they added nothing (health: telemetry_held)

    def _absolute(self, r: Reading) -> float | None:
        for pattern, band in self.cfg.deadband.items():
            if fnmatch.fnmatchcase(r.name, pattern):
                return band
        band = self.cfg.deadband_by_unit.get(r.unit or "")
        return band if band else None

    def _news(self, r: Reading, last: Any) -> bool:
        value = r.value
        if type(value) is not type(last) or not isinstance(value, (int, float)) or isinstance(value, bool):
            return value != last
        if not (math.isfinite(value) and math.isfinite(last)):
            return value != last
        absolute = self._absolute(r)
        if absolute is None and isinstance(value, int) and not r.unit:
            return value != last  # a count or a state: every change is news
        band = absolute if absolute is not None else abs(last) * self.cfg.deadband_pct / 100
        return abs(value - last) > band if band > 0 else value != last

    def keep(self, source: str, items: tuple[Emittable, ...]) -> tuple[Emittable, ...]:
        """Everything but the readings that moved less than their deadband since sent within the heartbeat."""
        if not self.cfg.report_by_exception:
            return items
        now = self._clock()
        out: list[Emittable] = []
        for item in items:
            if not isinstance(item, Reading):
                out.append(item)
                continue
            key = (source, item.name, tuple(sorted(item.tags.items())))
            last = self._sent.get(key)
            if last is not None and now - last[1] < self.cfg.heartbeat_s and not self._news(item, last[0]):
                self.held += 1
                continue
            self._sent[key] = (item.value, now)
            self._sent.move_to_end(key)
            if len(self._sent) > MAX_KEYS:
                self._sent.popitem(last=False)
            out.append(item)
        return tuple(out)
