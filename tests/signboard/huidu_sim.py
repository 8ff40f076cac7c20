"""A Huidu controller card on loopback, written from the protocol notes rather than from the client: it parses
every packet by its length and command, joins XML pieces by total and offset, answers as a card does, and keeps
every packet's bytes and every XML command so tests compare them byte for byte."""

from __future__ import annotations

import asyncio
import re
import struct
import threading
import time
from dataclasses import dataclass, field

GUID = "5f3c-sim-guid"


@dataclass
class Received:
    cmd: int
    raw: bytes


@dataclass
class Card:
    """Runs in a thread of its own (tests drive the agent and the browser synchronously)."""

    port: int = 0
    packets: list[Received] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)  # when each command had arrived whole (time.time())
    refuse: set[str] = field(default_factory=set)  # methods answered with a failure result
    connections: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Card:
        self.thread.start()
        assert self._ready.wait(5)
        return self

    def stop(self) -> None:
        """The server, every connection and their handlers end before the loop does: nothing is left for the
        garbage collector to finalize later, in the middle of some other test."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in handlers:
            t.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()

    def drop(self) -> None:
        """Pull the cable: every open connection is closed."""
        def close() -> None:
            for w in self._writers:
                w.close()
        self.loop.call_soon_threadsafe(close)

    def methods(self) -> list[str]:
        with self.lock:
            return [m.group(1).decode() for c in self.commands
                    if (m := re.search(rb'<in method="([A-Za-z]+)"', c)) is not None]

    def stamped(self) -> list[tuple[float, bytes]]:
        with self.lock:
            return list(zip(self.stamps, self.commands))

    def last(self, method: str) -> bytes | None:
        with self.lock:
            found = [c for c in self.commands if f'<in method="{method}"'.encode() in c]
        return found[-1] if found else None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def serve() -> None:
            self._server = server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()

        self.loop.run_until_complete(serve())
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        pieces = b""
        try:
            while True:
                head = await reader.readexactly(4)
                length, cmd = struct.unpack("<HH", head)
                body = await reader.readexactly(length - 4)
                with self.lock:
                    self.packets.append(Received(cmd, head + body))
                if cmd == 0x2001:
                    writer.write(struct.pack("<HHI", 8, 0x2002, struct.unpack("<I", body)[0]))
                elif cmd == 0x005F:
                    writer.write(struct.pack("<HH", 4, 0x0060))
                elif cmd == 0x2003:
                    total, offset = struct.unpack_from("<II", body)
                    assert offset == len(pieces), (offset, len(pieces))
                    pieces += body[8:]
                    if len(pieces) < total:
                        continue
                    xml, pieces = pieces, b""
                    with self.lock:
                        self.commands.append(xml)
                        self.stamps.append(time.time())
                    method = re.search(rb'<in method="([A-Za-z]+)"', xml).group(1).decode()  # type: ignore[union-attr]
                    result = "kParseXmlFailed" if method in self.refuse else "kSuccess"
                    answer = (f'<?xml version="1.0" encoding="utf-8"?><sdk guid="{GUID}">'
                              f'<out method="{method}" result="{result}"/></sdk>').encode()
                    writer.write(struct.pack("<HHII", 12 + len(answer), 0x2004, len(answer), 0) + answer)
                else:
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
