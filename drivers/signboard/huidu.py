"""Huidu LED controller cards' SDK protocol over TCP (as publicly reverse-engineered from Huidu's SDK 2.0):
every packet is <length u16 LE, the whole packet><command u16 LE><payload>; XML commands travel in 0x2003 packets
as <total u32 LE><offset u32 LE><up to 8000 bytes of UTF-8 XML>. Pure bytes in, bytes out: no I/O here."""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

SERVICE_ASK = 0x2001
SERVICE_ANSWER = 0x2002
SDK_ASK = 0x2003
SDK_ANSWER = 0x2004
HEARTBEAT_ASK = 0x005F
HEARTBEAT_ANSWER = 0x0060
ERROR_ANSWER = 0x2000
TRANSPORT_VERSION = 0x1000005
HEADER = 4
SDK_HEADER = 12
MAX_CONTENT = 8000
PLACEHOLDER_GUID = "##GUID"
XML_DECL = '<?xml version="1.0" encoding="utf-8"?>'
_OUT = re.compile(r'<out\b[^>]*\bmethod="([^"]*)"[^>]*\bresult="([^"]*)"')
_GUID = re.compile(r'<sdk\b[^>]*\bguid="([^"]*)"')


class HuiduError(Exception):
    """The card refused a command or spoke something this client cannot read."""


def packet(cmd: int, payload: bytes = b"") -> bytes:
    if HEADER + len(payload) > 0xFFFF:
        raise HuiduError(f"packet too large: {len(payload)} bytes")
    return struct.pack("<HH", HEADER + len(payload), cmd) + payload


def version_packet() -> bytes:
    """The first packet after connecting: the transport version the client speaks."""
    return packet(SERVICE_ASK, struct.pack("<I", TRANSPORT_VERSION))


def heartbeat() -> bytes:
    return packet(HEARTBEAT_ASK)


def sdk_packets(xml: bytes) -> list[bytes]:
    """One XML command cut into 0x2003 packets of at most MAX_CONTENT bytes of XML each."""
    out = []
    for offset in range(0, len(xml), MAX_CONTENT):
        chunk = xml[offset:offset + MAX_CONTENT]
        out.append(packet(SDK_ASK, struct.pack("<II", len(xml), offset) + chunk))
    return out


def split_sdk(payload: bytes) -> tuple[int, int, bytes]:
    """(total length, offset, chunk) of a 0x2003/0x2004 packet's payload."""
    if len(payload) < SDK_HEADER - HEADER:
        raise HuiduError(f"SDK packet too short: {len(payload)} bytes")
    total, offset = struct.unpack_from("<II", payload)
    return total, offset, payload[8:]


def command_xml(guid: str, method: str, body: str = "") -> bytes:
    return f'{XML_DECL}<sdk guid={quoteattr(guid)}><in method="{method}">{body}</in></sdk>'.encode()


def answer_of(xml: bytes) -> tuple[str, str, str | None]:
    """(method, result, guid) of a card's answer."""
    text = xml.decode("utf-8", "replace")
    m = _OUT.search(text)
    if m is None:
        raise HuiduError(f"answer without <out method result>: {text[:120]!r}")
    g = _GUID.search(text)
    return m.group(1), m.group(2), g.group(1) if g else None


def if_version() -> bytes:
    """Asks the card for its SDK version; its answer carries the session's GUID."""
    return command_xml(PLACEHOLDER_GUID, "GetIFVersion", '<version value="1000000"/>')


def brightness(guid: str, percent: int) -> bytes:
    """Fixed brightness (mode default), the sensor range left at the SDK's defaults."""
    return command_xml(guid, "SetLuminancePloy", f'<mode value="default"/><default value="{int(percent)}"/>'
                                                 '<ploy></ploy><sensor min="1" max="100" time="10"/>')


def clock(guid: str, utc_offset: str, local_time: str) -> bytes:
    """Sets the card's clock to `local_time` ("YYYY-MM-DD hh:mm:ss"), no network sync, no summer time."""
    return command_xml(guid, "SetTimeInfo", f'<timezone value="(UTC{utc_offset})"/><summer enable="false"/>'
                                            f'<sync value="none"/><time value="{local_time}"/>')


def screen(guid: str, on: bool) -> bytes:
    return command_xml(guid, "OpenScreen" if on else "CloseScreen")


@dataclass(frozen=True)
class Look:
    """How text is drawn on one card."""

    width: int
    height: int
    font: str
    font_size: int
    color: str


def _id(*parts: str) -> str:
    """Stable ids from the content: the same program sends the same bytes."""
    h = hashlib.sha1("\x00".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _text_item(text: str, look: Look, seconds: int) -> str:
    return (f'<text guid="{_id("t", text)}" singleLine="false"><style align="center" valign="middle"/>'
            f"<string>{escape(text)}</string>"
            f'<font name={quoteattr(look.font)} size="{look.font_size}" color="{look.color}" bold="true" '
            f'italic="false" underline="false"/>'
            f'<effect in="0" out="0" inSpeed="4" outSpeed="4" duration="{seconds}"/></text>')


def _clock_item(look: Look) -> str:
    c = look.color
    return (f'<clock guid="{_id("c")}" type="digital" adjust="00:00:00"><title value="" color="{c}" display="false"/>'
            f'<date format="3" color="{c}" display="true"/><week format="1" color="{c}" display="true"/>'
            f'<time format="1" color="{c}" display="true"/><lunarCalendar color="{c}" display="false"/></clock>')


def program(guid: str, pages: list[str | None], look: Look, seconds: int, realtime: bool = False) -> bytes:
    """AddProgram: one program per page, each `seconds` long, in order; a page of None is the card's clock.
    `realtime` marks an emergency that must show at once."""
    progs = []
    for i, page in enumerate(pages):
        item = _clock_item(look) if page is None else _text_item(page, look, seconds)
        flag = ' flag="realtime"' if realtime else ""
        progs.append(f'<program type="normal" id="{i}" guid="{_id("p", str(i), page or "")}" name="page{i}"{flag}>'
                     f'<playControl duration="{_hms(seconds)}" disabled="false"/>'
                     f'<area guid="{_id("a", str(i))}" alpha="255"><rectangle x="0" y="0" width="{look.width}" '
                     f'height="{look.height}"/><resources>{item}</resources></area></program>')
    return command_xml(guid, "AddProgram", f"<screen>{''.join(progs)}</screen>")


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
