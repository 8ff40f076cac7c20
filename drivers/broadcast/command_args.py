"""The broadcast family's command schemas (cheap: the CLI and the router import them without the driver)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from agent.command_args import Args, Page


class BroadcastArgs(Args):
    """`broadcast`: create / update / cancel / play-now / preview a bulletin, or read and change the pronunciation
    lexicon (drivers/broadcast/README.md)."""

    action: Literal["create", "update", "cancel", "play-now", "preview", "lexicon"] = Field(description="what to do")
    id: Optional[str] = Field(None, max_length=64, description="the bulletin (cancel, play-now of a stored one)")
    bulletin: Optional[dict[str, Any]] = Field(None, description="the bulletin as in a bulletin file: id, title, "
                                                                 "text or audio, schedule, zones, priority")
    op: Optional[Literal["get", "set", "delete", "replace"]] = Field(
        None, description="lexicon: get, set (merge entries), delete (written forms), replace (the whole lexicon)")
    entries: Optional[dict[str, str]] = Field(None, description="lexicon set/replace: written form → spoken form")
    written: Optional[list[str]] = Field(None, max_length=500, description="lexicon delete: the written forms")
    if_version: Optional[int] = Field(None, ge=0, description="lexicon: refused unless this is the current version")


class BulletinsArgs(Page):
    """`bulletins`: the active bulletins with their next airings, and the zones with their outputs."""


COMMANDS: dict[str, type[Args]] = {"broadcast": BroadcastArgs, "bulletins": BulletinsArgs}
