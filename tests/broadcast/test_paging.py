"""Multicast group paging as Polycom/Algo-style speakers take it, checked by a receiver that parses the wire."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import Callable

import numpy as np

from drivers.broadcast.audio import Audio
from drivers.broadcast.config import PagingZone
from drivers.broadcast.outputs.paging import PagingOutput, host_serial
from drivers.broadcast.outputs.rtp import payloads
from tests.support.ports import free_port
from tests.support.wait import wait_until

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class GroupListener:
    """Joins a multicast group on 127.0.0.1 like a paging speaker and keeps every datagram with the kernel's
    arrival time (SO_TIMESTAMPNS: a busy test thread cannot blur the sender's pacing)."""

    def __init__(self, group: str, port: int, seen: Callable[[list[tuple[float, bytes]]], None] = lambda _: None
                 ) -> None:
        self.port = port
        self.seen = seen
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((group, port))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1")))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            stamps = [struct.unpack("qq", d[:16]) for lvl, kind, d in anc
                      if lvl == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS]
            self.got.append((stamps[0][0] + stamps[0][1] / 1e9, data))
            self.seen(self.got)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def _parse(data: bytes) -> dict:
    """One paging packet: the 20-byte header; for audio the codec, flags, sample count and the frame(s)."""
    op, channel, serial, cid_len, cid = struct.unpack("!BB4sB13s", data[:20])
    p = {"op": op, "channel": channel, "serial": serial, "caller_id": cid[:cid_len].decode("ascii"),
         "cid_pad": cid[cid_len:], "size": len(data)}
    if op == 0x10:
        codec, flags, samples = struct.unpack("!BBI", data[20:26])
        p.update(codec=codec, flags=flags, samples=samples, audio=data[26:])
    return p


def test_a_page_is_alert_audio_end_in_the_documented_format() -> None:
    group = f"239.255.{os.getpid() % 250}.{(os.getpid() // 250) % 250 + 101}"
    rx = GroupListener(group, free_port(socket.SOCK_DGRAM))
    t = np.arange(int(0.3 * 16000)) / 16000
    audio = Audio((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), 16000)
    zone = PagingZone.model_validate({"type": "paging", "group": group, "port": rx.port, "ttl": 0,
                                      "interface": "127.0.0.1", "channel": 7, "caller_id": "UBND Nghi An"})
    try:
        session = PagingOutput(zone).open(audio)
        deadline = time.monotonic() + 1.2
        result = session.play(deadline, threading.Event())
        session.close()
        wait_until(lambda: len(rx.got) >= 31 + 15 + 12, timeout=2, what="every packet")
    finally:
        rx.stop()
    assert not result.interrupted
    packets = [(arrival, _parse(data)) for arrival, data in rx.got]
    ops = [p["op"] for _, p in packets]
    n_audio = len(list(payloads(audio)))
    assert ops == [0x0F] * 31 + [0x10] * n_audio + [0xFF] * 12
    for _, p in packets:
        assert p["channel"] == 7 and p["serial"] == host_serial()
        assert p["caller_id"] == "UBND Nghi An" and set(p["cid_pad"]) <= {0}
    alerts = [a for a, p in packets if p["op"] == 0x0F]
    # paced by the sender's own clock: a packet may go late on a busy box (and the next ones catch up), never early
    assert all(alerts[i] - alerts[0] >= i * 0.030 - 0.001 for i in range(len(alerts)))
    audio_pkts = [(a, p) for a, p in packets if p["op"] == 0x10]
    frames = list(payloads(audio))
    assert all(p["codec"] == 0 and p["flags"] == 0 for _, p in audio_pkts)
    assert [(b["samples"] - a["samples"]) % 2**32 for (_, a), (_, b) in zip(audio_pkts, audio_pkts[1:])] == \
        [160] * (n_audio - 1)
    # the first carries its frame alone; each later one the previous frame, then its own
    assert audio_pkts[0][1]["audio"] == frames[0] and audio_pkts[0][1]["size"] == 20 + 6 + 160
    for k in range(1, n_audio):
        assert audio_pkts[k][1]["audio"] == frames[k - 1] + frames[k]
    assert all(a - audio_pkts[0][0] >= k * 0.020 - 0.001 for k, (a, _) in enumerate(audio_pkts))
    # audio starts at the deadline, after the alerts; the air time is the audio's own length
    assert n_audio * 0.020 - 0.002 <= result.ended - result.started < n_audio * 0.020 + 0.5
    assert 0.019 <= audio_pkts[0][0] - alerts[-1] < 0.5


def test_a_page_stopped_midway_still_ends_with_end_packets() -> None:
    group = f"239.255.{os.getpid() % 250}.{(os.getpid() // 250) % 250 + 101}"
    cancel = threading.Event()

    def cut_in(got: list[tuple[float, bytes]]) -> None:  # an emergency cuts in once the speaker heard 5 packets
        if sum(d[0] == 0x10 for _, d in got) >= 5:
            cancel.set()

    rx = GroupListener(group, free_port(socket.SOCK_DGRAM), cut_in)
    audio = Audio(np.full(16000, 4000, np.int16), 16000)  # 1 s: 50 packets
    zone = PagingZone.model_validate({"type": "paging", "group": group, "port": rx.port, "ttl": 0,
                                      "interface": "127.0.0.1"})
    try:
        session = PagingOutput(zone).open(audio)
        deadline = time.monotonic() + 1.0
        result = session.play(deadline, cancel)
        session.close()
        wait_until(lambda: [d[0] for _, d in rx.got[-12:]] == [0xFF] * 12, timeout=2, what="the end packets")
    finally:
        rx.stop()
    ops = [d[0] for _, d in rx.got]
    n_audio = ops.count(0x10)
    assert result.interrupted and 5 <= n_audio < 50
    assert ops == [0x0F] * 31 + [0x10] * n_audio + [0xFF] * 12
