"""RTP multicast to IP loudspeakers: G.711 µ-law, 8 kHz, 20 ms packets paced on absolute deadlines."""

from __future__ import annotations

import secrets
import struct
import threading
import time
from typing import Iterator

from drivers.broadcast.audio import Audio
from drivers.broadcast.config import RtpZone
from drivers.broadcast.outputs import OutputError, PlayResult, multicast_socket, wait_until
from drivers.broadcast.track import Track, regroup

RATE = 8000
PACKET_S = 0.020
PAYLOAD = 160  # 20 ms of 8 kHz µ-law
PT_PCMU = 0


def payloads(audio: Audio | Track) -> Iterator[bytes]:
    """The µ-law frames an airing sends, made as they go; the last one is padded with µ-law silence (0xFF)."""
    for frame in regroup(Track.of(audio).ulaw(RATE), PAYLOAD):
        yield frame + b"\xff" * (PAYLOAD - len(frame))


class RtpOutput:
    def __init__(self, cfg: RtpZone) -> None:
        self.cfg = cfg

    def open(self, audio: Audio | Track) -> RtpSession:
        return RtpSession(self.cfg, payloads(audio))


class RtpSession:
    def __init__(self, cfg: RtpZone, frames: Iterator[bytes]) -> None:
        self.frames = frames
        self.dest = (cfg.group, cfg.port)
        self.sock = multicast_socket("rtp", cfg.group, cfg.port, cfg.ttl, cfg.interface)
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.ts = secrets.randbits(32)

    def _packet(self, k: int, frame: bytes) -> bytes:
        marker = 0x80 if k == 0 else 0
        header = struct.pack("!BBHII", 0x80, marker | PT_PCMU, (self.seq + k) & 0xFFFF,
                             (self.ts + k * PAYLOAD) & 0xFFFFFFFF, self.ssrc)
        return header + frame

    def play(self, deadline: float, cancel: threading.Event) -> PlayResult:
        if not wait_until(deadline, cancel):
            now = time.time()
            return PlayResult(now, now, True)
        start = time.monotonic()
        started = time.time()
        sent = 0
        try:
            for k, frame in enumerate(self.frames):
                if k and not wait_until(start + k * PACKET_S, cancel):
                    return PlayResult(started, time.time(), True)
                self.sock.sendto(self._packet(k, frame), self.dest)
                sent = k + 1
        except OSError as exc:
            raise OutputError(f"rtp {self.dest[0]}:{self.dest[1]}: {exc.strerror or exc}") from None
        # the last packet holds 20 ms of sound: the airing ends when that has played
        wait_until(start + sent * PACKET_S, threading.Event())
        return PlayResult(started, time.time(), False)

    def close(self) -> None:
        self.sock.close()
