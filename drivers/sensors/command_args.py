"""The sensors family's command schemas."""

from __future__ import annotations

from agent.command_args import Args, Page


class SensorsArgs(Page):
    """`sensors`: the last reading of each sensor and the alarms standing."""


COMMANDS: dict[str, type[Args]] = {"sensors": SensorsArgs}
