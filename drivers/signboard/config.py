"""The `signboard` section: public boards (screens showing a page the agent serves, Huidu LED controller cards)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import Field, model_validator

from agent.section import Section

BOARD_ID = r"^[a-z0-9][a-z0-9_-]{0,31}$"
PAGES = ("notices", "schedule", "clock", "readings")


class ScreenBoard(Section):
    """A TV or LED wall driven by a PC or an Android box that opens the board's page full screen."""

    type: Literal["screen"] = Field(description="screen: a browser shows http://BOX:PORT/b/<secret>")
    label: str = Field("", max_length=80, description="where it hangs, as officials call it (Cổng UBND)")


class HuiduBoard(Section):
    """A Huidu LED controller card (HD-W/C/A series) on the LAN, spoken to over TCP (SDK protocol)."""

    type: Literal["huidu"] = Field(description="huidu: the agent sends text programs to the card over TCP")
    label: str = Field("", max_length=80, description="where it hangs, as officials call it")
    host: str = Field(min_length=1, description="the card's address")
    port: int = Field(10001, ge=1, le=65535, description="the card's SDK TCP port")
    width: int = Field(192, ge=8, le=4096, description="the panel's width in pixels")
    height: int = Field(64, ge=8, le=4096, description="the panel's height in pixels")
    font: str = Field("Arial", min_length=1, max_length=40, description="a font installed on the card that has "
                                                                        "Vietnamese glyphs")
    font_size: int = Field(16, ge=6, le=256, description="text size in pixels")
    color: str = Field("#ffff00", pattern=r"^#[0-9a-fA-F]{6}$", description="text colour (#RRGGBB)")
    brightness: int = Field(80, ge=1, le=100, description="brightness in percent, set on every connect")
    utc_offset: str = Field("+07:00", pattern=r"^[+-]\d{2}:\d{2}$", description="the card's time zone label")
    clock_sync_s: float = Field(3600.0, ge=60, description="how often the card's clock is set from the box's")
    timeout_s: float = Field(5.0, gt=0, le=60, description="connect and reply timeout")
    reconnect_max_s: float = Field(60.0, ge=1, description="longest pause between reconnect attempts")


Board = Union[ScreenBoard, HuiduBoard]


class SignboardConfig(Section):
    """Public electronic signboards (bảng tin điện tử công cộng): notices, the leaders' weekly schedule, the time;
    an emergency airing takes over every board until it ends."""

    enabled: bool = Field(True, description="false keeps the section but starts nothing")
    listen: str = Field("0.0.0.0", description="address the board pages are served on (the LAN)")
    port: int = Field(8090, ge=1, le=65535, description="port of the board pages (only /b/<secret> answers)")
    boards: dict[str, Board] = Field(default_factory=dict, description="boards by id (a-z, 0-9, _ -)")
    pages: list[Literal["notices", "schedule", "clock", "readings"]] = Field(
        default_factory=lambda: ["notices", "schedule", "clock"], min_length=1,
        description="what the boards rotate through, in order (readings: the sensors' latest values)")
    rotate_s: float = Field(12.0, ge=2, le=600, description="seconds each page stays")
    schedule_file: Optional[Path] = Field(None, description="a YAML/JSON or CSV file of the leaders' weekly "
                                                            "schedule (day,time,what,who,where), loaded when it "
                                                            "changes")
    readings: list[str] = Field(default_factory=list, description="reading names shown on the readings page "
                                                                  "(e.g. water_level, rain_mm)")
    max_notices: int = Field(20, ge=1, le=200, description="notices kept at once (the oldest goes first)")
    notice_max_chars: int = Field(1000, ge=20, le=5000, description="longest notice text")
    max_page_clients: int = Field(50, ge=1, le=1000, description="board pages open at once (more are refused)")

    @model_validator(mode="after")
    def _ids(self) -> SignboardConfig:
        for name in self.boards:
            if not re.match(BOARD_ID, name):
                raise ValueError(f"boards: id {name!r} must match {BOARD_ID}")
        return self
