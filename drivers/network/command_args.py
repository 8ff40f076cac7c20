"""The network family's command schemas."""

from __future__ import annotations

from agent.command_args import Args, NoArgs

COMMANDS: dict[str, type[Args]] = {"links": NoArgs}
