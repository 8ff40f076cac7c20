"""Data budget of a metered link: bytes that crossed its interface (rx + tx, every host) per day and billing month.

Counted from the kernel's interface counters, so the LAN's traffic counts as well as the agent's. A counter that
goes back (reboot, a ppp/wwan interface made anew) restarts the baseline; totals survive restarts in a state file.
Thresholds (a share of the daily or monthly budget) switch on actions until the period ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers.network.config import BudgetThreshold, DataBudget

MB = 1_000_000
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def cycle_start(day: date, billing_day: int) -> date:
    """The first day of the billing month `day` falls in."""
    if day.day >= billing_day:
        return day.replace(day=billing_day)
    prev_month = day.replace(day=1).toordinal() - 1
    return date.fromordinal(prev_month).replace(day=billing_day)


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class Crossing:
    """A threshold reached in this period: goes to the COC as a `data_budget` event."""

    link: str
    threshold: BudgetThreshold
    period: str  # "daily" or "monthly": the budget it was reached on
    used_bytes: int
    budget_bytes: int

    @property
    def pct(self) -> float:
        return round(100.0 * self.used_bytes / self.budget_bytes, 1)


@dataclass(slots=True)
class BudgetMeter:
    """One metered link's counts; `sample` feeds it the interface counter and returns new crossings."""

    link: str
    cfg: DataBudget
    tz: ZoneInfo
    day: str = ""
    cycle: str = ""
    day_bytes: int = 0
    cycle_bytes: int = 0
    last_counter: int | None = None
    boot: str = ""
    fired: set[str] = field(default_factory=set)  # "<threshold index>:<period key>" already announced

    def restore(self, doc: Any) -> None:
        """Take totals from the state file of a previous run (ignored if malformed)."""
        if not isinstance(doc, dict):
            return
        try:
            self.day, self.cycle = str(doc["day"]), str(doc["cycle"])
            self.day_bytes, self.cycle_bytes = int(doc["day_bytes"]), int(doc["cycle_bytes"])
            self.last_counter = int(doc["counter"]) if doc.get("counter") is not None else None
            self.boot = str(doc.get("boot", ""))
            self.fired = {str(x) for x in doc.get("fired", [])}
        except (KeyError, TypeError, ValueError):
            self.day = self.cycle = ""
            self.day_bytes = self.cycle_bytes = 0

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day, "cycle": self.cycle, "day_bytes": self.day_bytes, "cycle_bytes": self.cycle_bytes,
                "counter": self.last_counter, "boot": self.boot, "fired": sorted(self.fired)}

    def sample(self, counter: int | None, wall: float, boot: str) -> list[Crossing]:
        """Add what crossed the interface since the last sample; roll day and cycle at local midnight."""
        today = datetime.fromtimestamp(wall, self.tz).date()
        day, cycle = today.isoformat(), cycle_start(today, self.cfg.billing_day).isoformat()
        if day != self.day:
            self.day, self.day_bytes = day, 0
        if cycle != self.cycle:
            self.cycle, self.cycle_bytes = cycle, 0
        if counter is not None:
            if self.last_counter is not None and boot == self.boot:
                delta = counter - self.last_counter if counter >= self.last_counter else counter
            else:
                delta = 0 if self.last_counter is None else counter  # first sample, or the counters restarted
            self.day_bytes += delta
            self.cycle_bytes += delta
            self.last_counter, self.boot = counter, boot
        return self._crossings()

    def _budgets(self, period: str) -> list[tuple[str, int, int, str]]:
        """(period, used, budget, key) for the budgets a threshold of `period` is measured against."""
        out = []
        if period in ("any", "daily") and self.cfg.daily_mb is not None:
            out.append(("daily", self.day_bytes, int(self.cfg.daily_mb * MB), self.day))
        if period in ("any", "monthly") and self.cfg.monthly_mb is not None:
            out.append(("monthly", self.cycle_bytes, int(self.cfg.monthly_mb * MB), self.cycle))
        return out

    def _reached(self, th: BudgetThreshold) -> tuple[str, int, int, str] | None:
        hits = [b for b in self._budgets(th.period) if 100.0 * b[1] >= th.at_pct * b[2]]
        return max(hits, key=lambda b: b[1] / b[2]) if hits else None

    def _crossings(self) -> list[Crossing]:
        out = []
        keys = {f"{p}:{k}" for p, _, _, k in self._budgets("any")}
        self.fired = {f for f in self.fired if f.split(":", 1)[1] in keys}  # forget past periods
        for i, th in enumerate(self.cfg.thresholds):
            hit = self._reached(th)
            if hit is None:
                continue
            period, used, budget, key = hit
            tag = f"{i}:{period}:{key}"
            if tag not in self.fired:
                self.fired.add(tag)
                out.append(Crossing(self.link, th, period, used, budget))
        return out

    def actions(self) -> set[str]:
        """Every action of every threshold reached in the current periods."""
        return {a for th in self.cfg.thresholds if self._reached(th) is not None for a in th.actions}

    def used_pct(self) -> float:
        """The larger of the daily and monthly shares used."""
        return max(100.0 * used / budget for _, used, budget, _ in self._budgets("any"))

    def doc(self) -> dict[str, Any]:
        """What `links`, health and the console show."""
        out: dict[str, Any] = {"billing_day": self.cfg.billing_day, "cycle_start": self.cycle,
                               "actions": sorted(self.actions()), "used_pct": round(self.used_pct(), 1)}
        for period, used, budget, _ in self._budgets("any"):
            out[period] = {"used_mb": round(used / MB, 3), "budget_mb": budget / MB,
                           "pct": round(100.0 * used / budget, 1)}
        return out
