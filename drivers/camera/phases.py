"""The phases of a camera event; a `str` enum so the JSON the COC receives keeps the same words."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """start, update every `update_every_s`, end; alert is a one-off event (vehicle_stopped) with no end."""

    START = "start"
    UPDATE = "update"
    END = "end"
    ALERT = "alert"
