"""The signboard family's command schema (cheap: the CLI and the router import it without the driver)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from agent.command_args import Args


class SignboardArgs(Args):
    """`signboard`: show a notice (text, or a bulletin's text) on every board or some, clear one or all, load the
    leaders' weekly schedule, read the boards' state (drivers/signboard/README.md)."""

    action: Literal["show", "clear", "schedule", "status"] = Field(description="what to do")
    id: Optional[str] = Field(None, max_length=64, description="show: the notice's id (same id replaces it); "
                                                                "clear: the notice (none: all notices)")
    title: Optional[str] = Field(None, max_length=200, description="show: a heading")
    text: Optional[str] = Field(None, max_length=5000, description="show: the notice's text")
    bulletin: Optional[str] = Field(None, max_length=64, description="show: a bulletin whose title and text to show")
    boards: Optional[list[str]] = Field(None, max_length=100, description="show: only these boards (default all)")
    entries: Optional[list[dict[str, Any]]] = Field(None, max_length=100, description="schedule: the week's lines "
                                                                                      "{day, time, what, who, where}")


COMMANDS: dict[str, type[Args]] = {"signboard": SignboardArgs}
