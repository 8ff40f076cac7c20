"""The broadcast family's command schemas (cheap: the CLI and the router import them without the driver)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from agent.command_args import Args, Page


class BroadcastArgs(Args):
    """`broadcast`: create / update / cancel / play-now / preview a bulletin (drivers/broadcast/README.md)."""

    action: Literal["create", "update", "cancel", "play-now", "preview"] = Field(description="what to do")
    id: Optional[str] = Field(None, max_length=64, description="the bulletin (cancel, play-now of a stored one)")
    bulletin: Optional[dict[str, Any]] = Field(None, description="the bulletin as in a bulletin file: id, title, "
                                                                 "text or audio, schedule, zones, priority")


class BulletinsArgs(Page):
    """`bulletins`: the active bulletins with their next airings, and the zones with their outputs."""


COMMANDS: dict[str, type[Args]] = {"broadcast": BroadcastArgs, "bulletins": BulletinsArgs}
