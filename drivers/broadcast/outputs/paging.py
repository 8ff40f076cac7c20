"""Polycom/Algo-style multicast group paging: alert packets, G.711 µ-law audio every 20 ms, end packets.

Every packet starts with the same 20-byte header (Polycom engineering advisory 70568, "PTT/group paging audio
packet format"): opcode (alert 0x0F, audio 0x10, end 0xFF), channel, the sender's 4-byte serial, the caller id's
length and the caller id in 13 bytes. An audio packet adds the codec (its RTP payload type: 0 = G.711 µ-law), a
flags byte, the 32-bit sample count of its frame, then the previous frame (for loss concealment; absent from the
first) and the current one. Speakers take 31 alerts 30 ms apart as "a page begins" and 12 ends as "it is over".
"""

from __future__ import annotations

import secrets
import struct
import threading
import time
import uuid
from typing import Iterator

from drivers.broadcast.audio import Audio
from drivers.broadcast.config import PagingZone
from drivers.broadcast.outputs import OutputError, PlayResult, multicast_socket, wait_until
from drivers.broadcast.outputs.rtp import PACKET_S, PAYLOAD, payloads
from drivers.broadcast.track import Track

OP_ALERT, OP_AUDIO, OP_END = 0x0F, 0x10, 0xFF
CODEC_G711U = 0x00
ALERTS, ENDS, CONTROL_S = 31, 12, 0.030
HEADER = struct.Struct("!BB4sB13s")  # 20 bytes
AUDIO_HEADER = struct.Struct("!BBI")  # codec, flags, sample count


def host_serial() -> bytes:
    """The last four bytes of this box's MAC address, as a phone puts its own serial in the header."""
    return (uuid.getnode() & 0xFFFFFFFF).to_bytes(4, "big")


def header(op: int, channel: int, serial: bytes, caller_id: str) -> bytes:
    cid = caller_id.encode("ascii")
    return HEADER.pack(op, channel, serial, len(cid), cid.ljust(13, b"\0"))


def audio_packet(head: bytes, samples: int, prev: bytes | None, frame: bytes) -> bytes:
    return head + AUDIO_HEADER.pack(CODEC_G711U, 0, samples & 0xFFFFFFFF) + (prev or b"") + frame


class PagingOutput:
    def __init__(self, cfg: PagingZone) -> None:
        self.cfg = cfg
        self.serial = host_serial()

    def open(self, audio: Audio | Track) -> PagingSession:
        return PagingSession(self.cfg, self.cfg.channel, self.serial, payloads(audio))


class PagingSession:
    """Alerts lead the audio so the speakers are listening when its first frame is due at the deadline."""

    def __init__(self, cfg: PagingZone, channel: int, serial: bytes, frames: Iterator[bytes]) -> None:
        self.frames = frames
        self.dest = (cfg.group, cfg.port)
        self.heads = {op: header(op, channel, serial, cfg.caller_id) for op in (OP_ALERT, OP_AUDIO, OP_END)}
        self.sock = multicast_socket("paging", cfg.group, cfg.port, cfg.ttl, cfg.interface)
        self.samples0 = secrets.randbits(32)

    def _send(self, packet: bytes) -> None:
        try:
            self.sock.sendto(packet, self.dest)
        except OSError as exc:
            raise OutputError(f"paging {self.dest[0]}:{self.dest[1]}: {exc.strerror or exc}") from None

    def _control(self, op: int, count: int, first: float, cancel: threading.Event) -> bool:
        for i in range(count):
            if i and not wait_until(first + i * CONTROL_S, cancel):
                return False
            self._send(self.heads[op])
        return True

    def play(self, deadline: float, cancel: threading.Event) -> PlayResult:
        lead = (ALERTS - 1) * CONTROL_S + PACKET_S
        if not wait_until(deadline - lead, cancel):
            now = time.time()
            return PlayResult(now, now, True)
        if not self._control(OP_ALERT, ALERTS, time.monotonic(), cancel):  # stopped mid-alert: the page is over
            self._control(OP_END, ENDS, time.monotonic(), threading.Event())
            now = time.time()
            return PlayResult(now, now, True)
        wait_until(max(deadline, time.monotonic() + PACKET_S), cancel)
        start = time.monotonic()
        started = time.time()
        prev: bytes | None = None
        sent = 0
        interrupted = False
        for k, frame in enumerate(self.frames):
            if k and not wait_until(start + k * PACKET_S, cancel):
                interrupted = True
                break
            self._send(audio_packet(self.heads[OP_AUDIO], self.samples0 + k * PAYLOAD, prev, frame))
            prev, sent = frame, k + 1
        wait_until(start + sent * PACKET_S, threading.Event())
        ended = time.time()
        self._control(OP_END, ENDS, time.monotonic(), threading.Event())
        return PlayResult(started, ended, interrupted)

    def close(self) -> None:
        self.sock.close()
