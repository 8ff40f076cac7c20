"""Probes that leave by one given link: every socket is bound to the link's source address and device.

Binding the source address (with the `from <source>` policy rule routes.py installs) and SO_BINDTODEVICE
makes a probe test its own link, never whichever link holds the default route at the moment.
Each probe returns the round-trip time in seconds, or None when it failed or timed out.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import time
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from agent.icmp import ICMP_ECHO_REPLY, echo_request
from drivers.network.config import ProbeTarget

ProbeFn = Callable[[float], Awaitable[float | None]]


def _bound_socket(family_type: int, source: str, device: str | None, proto: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, family_type, proto)
    try:
        sock.setblocking(False)
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.bind((source, 0))
    except OSError:
        sock.close()
        raise
    return sock


class IcmpPinger:
    """One raw ICMP socket per link; echo replies are matched to requests by identifier and sequence."""

    def __init__(self, source: str, device: str | None) -> None:
        self.source = source
        self.device = device
        self.ident = int.from_bytes(os.urandom(2), "big")
        self._seq = 0
        self._pending: dict[tuple[str, int], tuple[asyncio.Future[float], float]] = {}
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = _bound_socket(socket.SOCK_RAW, self.source, self.device, socket.IPPROTO_ICMP)
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def close(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None
        for fut, _ in self._pending.values():
            fut.cancel()
        self._pending.clear()

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data, (addr, _) = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            now = time.perf_counter()
            ihl = (data[0] & 0x0F) * 4 if data else 0
            if len(data) < ihl + 8:
                continue
            kind, _code, _csum, ident, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind != ICMP_ECHO_REPLY or ident != self.ident:
                continue
            entry = self._pending.get((addr, seq))
            if entry is not None and not entry[0].done():
                entry[0].set_result(now - entry[1])

    async def ping(self, address: str, hard_timeout: float) -> float | None:
        if self._sock is None or self._loop is None:
            raise RuntimeError("IcmpPinger.open() was not called")
        self._seq = (self._seq + 1) & 0xFFFF
        key = (address, self._seq)
        fut: asyncio.Future[float] = self._loop.create_future()
        packet = echo_request(self.ident, self._seq, struct.pack("!d", time.time()))
        self._pending[key] = (fut, time.perf_counter())
        try:
            self._sock.sendto(packet, (address, 0))
            async with asyncio.timeout(hard_timeout):
                return await fut
        except (TimeoutError, OSError):
            return None
        finally:
            self._pending.pop(key, None)


async def tcp_probe(address: str, port: int, source: str, device: str | None, hard_timeout: float) -> float | None:
    """RTT of a TCP handshake; a refused connection is a failure (the service is down)."""
    loop = asyncio.get_running_loop()
    try:
        sock = _bound_socket(socket.SOCK_STREAM, source, device)
    except OSError:
        return None
    with sock:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(hard_timeout):
                await loop.sock_connect(sock, (address, port))
        except (TimeoutError, OSError):
            return None
        return time.perf_counter() - start


async def http_probe(target: ProbeTarget, source: str, device: str | None, hard_timeout: float) -> float | None:
    """Time until the status line of a GET; success when the status is expected (default 200-399)."""
    assert target.url is not None
    parts = urlsplit(target.url)
    tls = parts.scheme == "https"
    port = target.port or parts.port or (443 if tls else 80)
    host = parts.hostname or str(target.address)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    start = time.perf_counter()

    async def run() -> int:
        sock = _bound_socket(socket.SOCK_STREAM, source, device)
        try:
            await loop.sock_connect(sock, (str(target.address), port))
        except OSError:
            sock.close()
            raise
        ctx = None
        if tls:
            ctx = ssl.create_default_context()
            if not target.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=host if tls else None)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: commune-agent-probe\r\n"
                         "Connection: close\r\n\r\n".encode("ascii"))
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise OSError("not an HTTP response")
        return int(fields[1])

    try:
        async with asyncio.timeout(hard_timeout):
            status = await run()
    except (TimeoutError, OSError, ssl.SSLError, UnicodeError):
        return None
    ok = status in target.expect_status if target.expect_status else 200 <= status <= 399
    return time.perf_counter() - start if ok else None


def dns_query(qid: int, name: str) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.strip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)


async def dns_probe(address: str, port: int, name: str, source: str, device: str | None,
                    hard_timeout: float) -> float | None:
    """RTT of an A query; success only on NOERROR (the resolver works, not just the path)."""
    loop = asyncio.get_running_loop()
    qid = int.from_bytes(os.urandom(2), "big")
    try:
        sock = _bound_socket(socket.SOCK_DGRAM, source, device)
    except OSError:
        return None

    async def run() -> float | None:
        sock.connect((address, port))
        start = time.perf_counter()
        await loop.sock_sendall(sock, dns_query(qid, name))
        while True:
            data = await loop.sock_recv(sock, 4096)
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid and data[2] & 0x80:
                rcode = data[3] & 0x0F
                return time.perf_counter() - start if rcode == 0 else None

    with sock:
        try:
            async with asyncio.timeout(hard_timeout):
                return await run()
        except (TimeoutError, OSError):
            return None


def make_probe(target: ProbeTarget, source: str, device: str | None, pinger: IcmpPinger | None) -> ProbeFn:
    """A callable `probe(hard_timeout) -> rtt | None` for one target on one link."""
    address = str(target.address)
    if target.type == "icmp":
        if pinger is None:
            raise ValueError("icmp probes need the link's IcmpPinger")
        return lambda t: pinger.ping(address, t)
    if target.type == "tcp":
        assert target.port is not None
        port = target.port
        return lambda t: tcp_probe(address, port, source, device, t)
    if target.type == "http":
        return lambda t: http_probe(target, source, device, t)
    return lambda t: dns_probe(address, target.port or 53, target.query, source, device, t)
