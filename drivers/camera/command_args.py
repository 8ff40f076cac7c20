"""The cameras family's command schemas (cheap: no OpenCV)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from agent.command_args import Args, Page

CHUNK_BYTES = 256 * 1024  # clip upload piece: one raw MQTT message each
MIN_CHUNK_BYTES = 1024
MAX_CHUNK_BYTES = 4 * 1024 * 1024


class SnapshotArgs(Args):
    """`snapshot`: a fresh picture on snapshot/{camera}/{event_id}."""

    camera: Optional[str] = Field(None, max_length=80, description="which camera (may be left out with one)")


class ClipArgs(Args):
    """`clip`: without `id` the clips kept; with `id` that clip sent in raw pieces on clip/{camera}/{id}/{offset}."""

    camera: Optional[str] = Field(None, max_length=80, description="which camera (may be left out with one)")
    id: Optional[str] = Field(None, max_length=120, description="the clip to upload (from the list)")
    offset: int = Field(0, ge=0, description="resume from this byte")
    chunk_bytes: int = Field(CHUNK_BYTES, ge=MIN_CHUNK_BYTES, le=MAX_CHUNK_BYTES,
                             description="bytes per piece (made smaller when the broker's packet limit is lower)")
    force: bool = Field(False, description="send now even on a metered link (not while a data budget holds bulk)")


class CamerasArgs(Page):
    """`cameras`: each camera's state (online, problem) and its last event."""


COMMANDS: dict[str, type[Args]] = {"snapshot": SnapshotArgs, "clip": ClipArgs, "cameras": CamerasArgs}
