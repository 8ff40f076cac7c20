"""The sensors family's face: how its readings and alarms are keyed, so a reader can keep the latest of each.

The driver keeps no state file: the latest readings and the alarms standing are what it emits (a console or an
automation watches the emits and keeps them by these keys).
"""

from __future__ import annotations

from typing import Any, Mapping

from agent.driver import Reading

SECTION = "sensors"
ALARM_RAISED = "sensor_alarm"
ALARM_CLEARED = "sensor_alarm_cleared"


def reading_key(reading: Reading) -> tuple[str, str, str]:
    """(source, device, reading name): one latest value per key."""
    tags = reading.tags or {}
    return (tags.get("source", ""), tags.get("device", ""), reading.name)


def alarm_key(data: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(rule, source, device, reading) of an alarm event's data: a clear ends the alarm with the same key."""
    return (str(data.get("rule")), str(data.get("source")), str(data.get("device")), str(data.get("reading")))
