"""The automations family's command schema (cheap: the CLI and the router import it without the driver)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from agent.command_args import Args


class AutomationsArgs(Args):
    """`automations`: list the rules and their state, switch one on or off, decide a warning waiting for officials
    (drivers/automations/README.md)."""

    action: Literal["list", "status", "enable", "disable", "confirm", "cancel"] = Field(description="what to do")
    rule: Optional[str] = Field(None, max_length=40, description="enable, disable: the rule's id")
    id: Optional[str] = Field(None, max_length=64, description="confirm, cancel: the pending warning's id")


COMMANDS: dict[str, type[Args]] = {"automations": AutomationsArgs}
