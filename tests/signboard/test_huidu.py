"""The Huidu client against a card simulator on loopback: the handshake, brightness, clock and a Vietnamese text
program arrive byte for byte; a long program is cut at 8000 bytes; a refused command and a pulled cable are
reported and the link comes back by itself."""

from __future__ import annotations

import asyncio
import re
import struct
from collections import Counter
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest

from agent.logs import KvLogger
from drivers.signboard.config import HuiduBoard
from drivers.signboard.huidu_link import HuiduLink
from tests.signboard.huidu_sim import GUID, Card
from tests.support.wait import async_wait_until

TEXT = "Thông báo: họp dân lúc 19 giờ tại nhà văn hoá thôn Đông & Tây <khẩn>"
DECL = b'<?xml version="1.0" encoding="utf-8"?>'


@pytest.fixture
def card() -> Iterator[Card]:
    c = Card().start()
    try:
        yield c
    finally:
        c.stop()


def _link(card: Card, pages: list[str | None], counts: Counter[str], **kw: object) -> HuiduLink:
    board = HuiduBoard.model_validate({"type": "huidu", "host": "127.0.0.1", "port": card.port, "brightness": 55,
                                      "width": 192, "height": 64, "font": "DejaVu Sans", "font_size": 14,
                                      "color": "#ff0000", "timeout_s": 2, "reconnect_max_s": 1, **kw})
    return HuiduLink("cho", board, ZoneInfo("Asia/Ho_Chi_Minh"), 12, lambda: (pages, False), KvLogger("t"),
                     lambda name: counts.update([name]), lambda: None)


async def _run(link: HuiduLink, until: object, timeout: float = 5) -> None:
    task = asyncio.create_task(link.run())
    try:
        await async_wait_until(until, timeout=timeout, what="the card's state")  # type: ignore[arg-type]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_handshake_brightness_clock_and_vietnamese_text_byte_for_byte(card: Card) -> None:
    counts: Counter[str] = Counter()
    link = _link(card, [TEXT, None], counts)
    asyncio.run(_run(link, lambda: "AddProgram" in card.methods()))

    # the first packet: length 8 (the whole packet), command 0x2001, transport version 0x01000005
    assert card.packets[0].raw == bytes.fromhex("0800 0120 05000001")
    assert card.methods()[:4] == ["GetIFVersion", "SetLuminancePloy", "SetTimeInfo", "AddProgram"]
    assert card.commands[0] == DECL + b'<sdk guid="##GUID"><in method="GetIFVersion"><version value="1000000"/>' \
                                      b'</in></sdk>'
    # after the handshake every command carries the card's session GUID
    assert card.last("SetLuminancePloy") == DECL + (
        f'<sdk guid="{GUID}"><in method="SetLuminancePloy"><mode value="default"/><default value="55"/>'
        '<ploy></ploy><sensor min="1" max="100" time="10"/></in></sdk>').encode()
    clock = card.last("SetTimeInfo")
    assert clock is not None
    m = re.search(rb'<time value="(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"/>', clock)
    assert m, clock
    assert clock == DECL + (f'<sdk guid="{GUID}"><in method="SetTimeInfo"><timezone value="(UTC+07:00)"/>'
                            f'<summer enable="false"/><sync value="none"/><time value="{m.group(1).decode()}"/>'
                            '</in></sdk>').encode()
    program = card.last("AddProgram")
    assert program is not None
    escaped = TEXT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert f"<string>{escaped}</string>".encode() in program  # UTF-8, the card renders it
    assert b'<font name="DejaVu Sans" size="14" color="#ff0000"' in program
    assert b'<rectangle x="0" y="0" width="192" height="64"/>' in program
    assert b"<clock " in program and program.count(b"<program ") == 2
    # the packet that carried it: <len = whole packet><0x2003><total><offset 0><xml>
    sent = [p.raw for p in card.packets if p.cmd == 0x2003][-1]
    assert sent == struct.pack("<HHII", 12 + len(program), 0x2003, len(program), 0) + program
    assert link.state == "ok" and link.error is None and not counts


def test_long_program_goes_in_8000_byte_pieces(card: Card) -> None:
    long = ("Lịch tiêm phòng gia súc đợt 2 tại các thôn " * 200).strip()
    link = _link(card, [long], Counter())
    asyncio.run(_run(link, lambda: "AddProgram" in card.methods()))
    program = card.last("AddProgram")
    assert program is not None and len(program) > 8000
    pieces = [p.raw for p in card.packets if p.cmd == 0x2003][-((len(program) + 7999) // 8000):]
    joined = b""
    for p in pieces:
        length, cmd, total, offset = struct.unpack_from("<HHII", p)
        assert (length, cmd, total, offset) == (len(p), 0x2003, len(program), len(joined))
        assert len(p) - 12 <= 8000
        joined += p[12:]
    assert joined == program


def test_refused_command_and_pulled_cable_are_reported_and_the_link_comes_back(card: Card) -> None:
    counts: Counter[str] = Counter()
    card.refuse = {"AddProgram"}
    link = _link(card, [TEXT], counts)

    async def scenario() -> None:
        task = asyncio.create_task(link.run())
        try:
            await async_wait_until(lambda: link.state == "down", timeout=5, what="the refusal reported")
            assert link.error == "HuiduError: AddProgram refused: kParseXmlFailed"
            assert counts["huidu_errors"] >= 1
            card.refuse = set()
            await async_wait_until(lambda: link.state == "ok", timeout=5, what="the link back after the refusal")
            before = card.connections
            card.drop()
            await async_wait_until(lambda: card.connections > before and link.state == "ok"
                                   and card.methods().count("AddProgram") >= 3, timeout=5,
                                   what="reconnected and the program sent again")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
