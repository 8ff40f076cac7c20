"""One Huidu card over TCP: connect and handshake, set brightness and the clock, send the pages whenever they
change, keep the connection alive; reconnect with backoff when the card goes away."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

from agent.backoff import Backoff
from agent.logs import KvLogger
from drivers.signboard import huidu
from drivers.signboard.config import HuiduBoard

HEARTBEAT_S = 20.0
EOF_CHECK_S = 1.0  # a card that closed the connection is noticed within this while idle

Pages = tuple[list[str | None], bool]  # (pages, emergency)


class HuiduLink:
    """Sends what `pages()` returns each time `changed` is set; `state`/`error` say how the card is doing."""

    def __init__(self, name: str, board: HuiduBoard, tz: ZoneInfo, rotate_s: float, pages: Callable[[], Pages],
                 log: KvLogger, count: Callable[[str], None], on_state: Callable[[], None]) -> None:
        self.name, self.board, self.tz, self.rotate_s = name, board, tz, rotate_s
        self.pages, self.log, self.count, self.on_state = pages, log, count, on_state
        self.look = huidu.Look(board.width, board.height, board.font, board.font_size, board.color)
        self.changed = asyncio.Event()
        self.state = "connecting"
        self.error: str | None = None
        self.sent_at: float | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._guid = huidu.PLACEHOLDER_GUID

    async def run(self) -> None:
        backoff = Backoff(1.0, self.board.reconnect_max_s)
        while True:
            try:
                await self._session(backoff)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, huidu.HuiduError) as exc:
                self._set("down", f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__)
                self.count("huidu_errors")
                self.log.warning("huidu_down", board=self.name, host=self.board.host, error=self.error)
            finally:
                await self._close()
            await asyncio.sleep(backoff.next())

    async def _session(self, backoff: Backoff) -> None:
        b = self.board
        async with asyncio.timeout(b.timeout_s):
            self._reader, self._writer = await asyncio.open_connection(b.host, b.port)
        await self._handshake()
        await self._command(huidu.brightness(self._guid, b.brightness))
        await self._sync_clock()
        backoff.reset()
        self.log.info("huidu_connected", board=self.name, host=b.host, port=b.port)
        next_clock = time.monotonic() + b.clock_sync_s
        next_beat = time.monotonic() + HEARTBEAT_S
        self.changed.set()
        while True:
            if self.changed.is_set():
                self.changed.clear()
                pages, emergency = self.pages()
                await self._command(huidu.program(self._guid, pages, self.look, max(1, int(self.rotate_s)), emergency))
                self.sent_at = time.time()
                self._set("ok", None)
                self.log.info("huidu_sent", board=self.name, pages=len(pages), emergency=emergency)
            if time.monotonic() >= next_clock:
                await self._sync_clock()
                next_clock = time.monotonic() + b.clock_sync_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EOF_CHECK_S):
                    await self.changed.wait()
                    continue
            assert self._reader is not None
            if self._reader.at_eof():
                raise ConnectionResetError("the card closed the connection")
            if time.monotonic() >= next_beat:
                await self._heartbeat()
                next_beat = time.monotonic() + HEARTBEAT_S

    async def _handshake(self) -> None:
        self._guid = huidu.PLACEHOLDER_GUID
        await self._send([huidu.version_packet()])
        await self._read(huidu.SERVICE_ANSWER)
        _, _, guid = await self._command(huidu.if_version())
        if guid and guid != huidu.PLACEHOLDER_GUID:
            self._guid = guid

    async def _sync_clock(self) -> None:
        now = datetime.now(self.tz).strftime("%Y-%m-%d %H:%M:%S")
        await self._command(huidu.clock(self._guid, self.board.utc_offset, now))

    async def _heartbeat(self) -> None:
        await self._send([huidu.heartbeat()])
        await self._read(huidu.HEARTBEAT_ANSWER)

    async def _command(self, xml: bytes) -> tuple[str, str, str | None]:
        await self._send(huidu.sdk_packets(xml))
        buf = b""
        while True:
            _, payload = await self._read(huidu.SDK_ANSWER)
            total, offset, chunk = huidu.split_sdk(payload)
            if offset != len(buf):
                raise huidu.HuiduError(f"answer piece at offset {offset}, expected {len(buf)}")
            buf += chunk
            if len(buf) >= total:
                break
        method, result, guid = huidu.answer_of(buf)
        if result != "kSuccess":
            raise huidu.HuiduError(f"{method} refused: {result}")
        return method, result, guid

    async def _send(self, packets: list[bytes]) -> None:
        assert self._writer is not None
        self._writer.write(b"".join(packets))
        async with asyncio.timeout(self.board.timeout_s):
            await self._writer.drain()

    async def _read(self, want: int) -> tuple[int, bytes]:
        """The next packet, heartbeat answers skipped unless asked for; an error packet or another command fails."""
        assert self._reader is not None
        while True:
            async with asyncio.timeout(self.board.timeout_s):
                length, cmd = struct.unpack("<HH", await self._reader.readexactly(huidu.HEADER))
                if length < huidu.HEADER:
                    raise huidu.HuiduError(f"packet length {length} is shorter than its header")
                payload = await self._reader.readexactly(length - huidu.HEADER)
            if cmd == want:
                return cmd, payload
            if cmd == huidu.HEARTBEAT_ANSWER:
                continue
            if cmd == huidu.ERROR_ANSWER:
                code = struct.unpack_from("<H", payload)[0] if len(payload) >= 2 else -1
                raise huidu.HuiduError(f"card answered error {code}")
            raise huidu.HuiduError(f"expected command 0x{want:04x}, got 0x{cmd:04x}")

    async def _close(self) -> None:
        w, self._writer, self._reader = self._writer, None, None
        if w is not None:
            w.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await w.wait_closed()

    def _set(self, state: str, error: str | None) -> None:
        if (state, error) != (self.state, self.error):
            self.state, self.error = state, error
            self.on_state()
