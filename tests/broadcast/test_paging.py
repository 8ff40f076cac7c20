"""Multicast group paging as Polycom/Algo-style speakers take it, checked by a receiver that parses the wire."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import numpy as np

from drivers.broadcast.audio import Audio
from drivers.broadcast.config import PagingZone
from drivers.broadcast.outputs.paging import PagingOutput, host_serial
from drivers.broadcast.outputs.rtp import payloads
from tests.support.ports import free_port
from tests.support.wait import wait_until


class GroupListener:
    """Joins a multicast group on 127.0.0.1 like a paging speaker and keeps every datagram with its arrival."""

    def __init__(self, group: str, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((group, port))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1")))
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), data))

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
    assert abs(np.median(np.diff(alerts)) - 0.030) < 0.004
    audio_pkts = [(a, p) for a, p in packets if p["op"] == 0x10]
    frames = list(payloads(audio))
    assert all(p["codec"] == 0 and p["flags"] == 0 for _, p in audio_pkts)
    assert [(b["samples"] - a["samples"]) % 2**32 for (_, a), (_, b) in zip(audio_pkts, audio_pkts[1:])] == \
        [160] * (n_audio - 1)
    # the first carries its frame alone; each later one the previous frame, then its own
    assert audio_pkts[0][1]["audio"] == frames[0] and audio_pkts[0][1]["size"] == 20 + 6 + 160
    for k in range(1, n_audio):
        assert audio_pkts[k][1]["audio"] == frames[k - 1] + frames[k]
    gaps = np.diff([a for a, _ in audio_pkts]) * 1000
    assert abs(np.median(gaps) - 20.0) < 2.0
    # audio starts at the deadline, after the alerts; the air time is the audio's own length
    assert abs(result.ended - result.started - n_audio * 0.020) < 0.06
    assert audio_pkts[0][0] - alerts[-1] < 0.06


def test_a_page_stopped_midway_still_ends_with_end_packets() -> None:
    group = f"239.255.{os.getpid() % 250}.{(os.getpid() // 250) % 250 + 101}"
    rx = GroupListener(group, free_port(socket.SOCK_DGRAM))
    audio = Audio(np.full(16000, 4000, np.int16), 16000)  # 1 s
    zone = PagingZone.model_validate({"type": "paging", "group": group, "port": rx.port, "ttl": 0,
                                      "interface": "127.0.0.1"})
    cancel = threading.Event()
    try:
        session = PagingOutput(zone).open(audio)
        deadline = time.monotonic() + 1.0
        threading.Timer(1.2, cancel.set).start()  # an emergency cuts in 0.2 s into the page
        result = session.play(deadline, cancel)
        session.close()
        wait_until(lambda: [d[0] for _, d in rx.got[-12:]] == [0xFF] * 12, timeout=2, what="the end packets")
    finally:
        rx.stop()
    ops = [d[0] for _, d in rx.got]
    n_audio = ops.count(0x10)
    assert result.interrupted and 5 <= n_audio < 25
    assert ops == [0x0F] * 31 + [0x10] * n_audio + [0xFF] * 12
