"""The control channel between camera workers and the shared detector: length-prefixed JSON on a unix socket.

Pixels never travel here: a worker's first message (hello) carries the file descriptor of its memfd slot
(SCM_RIGHTS), and each request only says how many crops it wrote there. The socket lives in the abstract
namespace, so nothing is left on disk when either side is killed.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterable
from typing import Any

HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 20  # a result of a few crops is a few kB; anything near this is a broken peer


class WireError(Exception):
    """The peer closed the channel or sent something that is not a message."""


def address(name: str) -> str:
    """The abstract-namespace address of the service named name (no file, gone with the last socket)."""
    return "\0" + name


def send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(msg, separators=(",", ":")).encode()
    frame = HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [frame], fds)
        if sent < len(frame):
            sock.sendall(frame[sent:])
    else:
        sock.sendall(frame)


def _exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise WireError("channel closed")
        buf += chunk
    return bytes(buf)


def _decode(data: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(data)
    except ValueError as exc:
        raise WireError("not JSON") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
        raise WireError("not a message")
    return msg


def recv(sock: socket.socket) -> dict[str, Any]:
    """One message; WireError when the peer is gone or broken, TimeoutError per the socket's timeout."""
    (n,) = HEADER.unpack(_exactly(sock, HEADER.size))
    if n > MAX_MESSAGE:
        raise WireError(f"message of {n} bytes")
    return _decode(_exactly(sock, n))


def recv_with_fd(sock: socket.socket) -> tuple[dict[str, Any], int | None]:
    """The first message of a connection and the descriptor that came with it (None if none did)."""
    head, fds, _, _ = socket.recv_fds(sock, HEADER.size, 1)
    if len(head) < HEADER.size:
        head += _exactly(sock, HEADER.size - len(head)) if head else b""
        if not head:
            raise WireError("channel closed")
    (n,) = HEADER.unpack(head)
    if n > MAX_MESSAGE:
        for fd in fds:
            socket.close(fd)
        raise WireError(f"message of {n} bytes")
    return _decode(_exactly(sock, n)), (fds[0] if fds else None)


def p95_ms(seconds: Iterable[float]) -> float | None:
    """The 95th percentile of durations in seconds, in ms (both sides report their latency so); None if none."""
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1) if ordered else None
