"""A camera's settings inside its worker process without pydantic: the agent validated them already.

Importing pydantic and building its first model costs a worker ~16 MB of memory, a fifth of what it needs, for
a check already made. The worker reads the section the agent dumped (`model_dump(mode="json")`) into read-only
views with the same attribute names; the few rules the models carry (a class's minimum score, the arming
windows) live here once and the models call them too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

OBJECT_CLASSES = ("person", "bicycle", "motorcycle", "car", "bus", "truck")
VEHICLE_CLASSES = frozenset(OBJECT_CLASSES[1:])
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def score_for(min_scores: Mapping[str, float], min_score: float, label: str) -> float:
    """The detection score a label needs: its own override, else the camera's."""
    return min_scores.get(label, min_score)


def in_window(days: Sequence[str], start: dt.time, end: dt.time, now: dt.datetime) -> bool:
    """True if now (local) falls inside the weekly window; end before start wraps past midnight."""
    t = now.time().replace(tzinfo=None)
    day = DAYS[now.weekday()]
    if start <= end:
        return day in days and start <= t <= end
    if t >= start:
        return day in days
    yesterday = DAYS[(now.weekday() - 1) % 7]
    return yesterday in days and t <= end


class View:
    """Read-only attribute access over one dumped section; nested sections are views too."""

    KINDS: dict[str, type[View]] = {}  # key -> view class for a nested section (or each item of a list of them)

    def __init__(self, data: Mapping[str, Any]) -> None:
        for key, value in data.items():
            kind = self.KINDS.get(key, View)
            if isinstance(value, Mapping) and key not in ("min_scores",):
                value = kind(value)
            elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                value = [kind(v) for v in value]
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")


class DetectView(View):
    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        for key in ("model_dir", "model"):
            if getattr(self, key, None) is not None:
                object.__setattr__(self, key, Path(getattr(self, key)))

    def score_for(self, label: str) -> float:
        return score_for(self.min_scores, self.min_score, label)  # type: ignore[attr-defined]


class ArmWindowView(View):
    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        object.__setattr__(self, "start", dt.time.fromisoformat(data["start"]))
        object.__setattr__(self, "end", dt.time.fromisoformat(data["end"]))

    def contains(self, now: dt.datetime) -> bool:
        return in_window(self.days, self.start, self.end, now)  # type: ignore[attr-defined]


class CameraView(View):
    """A camera as its worker sees it: what CameraConfig gives the analysis, read from the agent's dump."""

    KINDS = {"detect": DetectView, "armed": ArmWindowView}

    def is_armed(self, now: dt.datetime) -> bool:
        armed: list[ArmWindowView] = self.armed  # type: ignore[attr-defined]
        return not armed or any(w.contains(now) for w in armed)
