"""Demo devices for the broadcast family: an RTP multicast 'loudspeaker' on loopback with an HTTP status API, and
a 'sound card' that plays in real time into a WAV file with a monitor line-in wired back from its 'amplifier'.

The agent process must run with HOME=/tmp/commune-demo/broadcast/home so its default ALSA device is the paced
one (tests/support/alsa.py PacedSoundcard) writing /tmp/commune-demo/broadcast/soundcard.wav. A Vietnamese
bulletin is dropped into the watched directory a few seconds after start, scheduled a few seconds ahead; a few
seconds into its airing the loudspeaker is unplugged (its status API stops answering) and plugged back in
after the airing, so the COC, the console and the as-run log show a speaker going down and coming back.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from tests.support.alsa import PacedSoundcard

BASE = Path("/tmp/commune-demo/broadcast")
HOME = BASE / "home"
SOUNDCARD_WAV = BASE / "soundcard.wav"
BULLETIN_DIR = BASE / "bulletins"
REPORT = BASE / "rtp-heard.json"
GROUP, PORT = "239.255.18.31", 18851
STATUS_PORT = 18852  # demo.yaml: broadcast.zones.loa-xom.speakers[0].status_url
UNPLUG_AFTER_S = 3.0  # into the airing
REPLUG_AFTER_S = 2.0  # after the airing
TEXT = ("UBND xã Nghi Ân thông báo: vào lúc 7 giờ 30 phút sáng thứ Hai, ngày 25/11/2026, tại hội trường "
        "UBND xã sẽ tổ chức họp giao ban tháng 11. Mọi thắc mắc xin liên hệ số điện thoại 0238 3851 234.")


def _listener(stop: threading.Event) -> None:
    """Joins the group on 127.0.0.1 like an IP speaker would and reports each stream it hears."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((GROUP, PORT))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1")))
    sock.settimeout(0.5)
    streams: list[dict] = []
    cur: dict | None = None
    while not stop.is_set():
        try:
            data = sock.recv(2048)
        except TimeoutError:
            if cur is not None and time.time() - cur["last"] > 1.0:
                print(f"sim_broadcast: RTP speaker heard {cur['packets']} packets = {cur['packets'] * 0.02:.1f} s "
                      f"of audio, payload type {sorted(cur['pt'])}, sequence gaps {cur['gaps']}", flush=True)
                streams.append({k: (sorted(v) if isinstance(v, set) else v) for k, v in cur.items()})
                REPORT.write_text(json.dumps(streams, indent=1))
                cur = None
            continue
        if len(data) < 12:
            continue
        seq = struct.unpack("!H", data[2:4])[0]
        if cur is None:
            cur = {"first": time.time(), "last": time.time(), "packets": 0, "pt": set(), "gaps": 0, "seq": seq - 1}
        cur["gaps"] += int((seq - cur["seq"]) % 65536 != 1)
        cur.update(last=time.time(), seq=seq, packets=cur["packets"] + 1)
        cur["pt"].add(data[1] & 0x7F)
    sock.close()


def _drop_bulletin(stop: threading.Event, delay_s: float, ahead_s: float) -> None:
    if stop.wait(delay_s):
        return
    at = (datetime.now().astimezone() + timedelta(seconds=ahead_s)).replace(microsecond=0)
    BULLETIN_DIR.mkdir(parents=True, exist_ok=True)
    tmp = BULLETIN_DIR / ".demo.tmp"
    tmp.write_text(f"id: demo-hop-giao-ban\ntitle: Họp giao ban tháng 11\npriority: high\n"
                   f"text: >\n  {TEXT}\nschedule:\n  at: {at.isoformat()}\nchime:\n  before: true\n"
                   f"  after: true\n", encoding="utf-8")
    tmp.replace(BULLETIN_DIR / "demo-hop-giao-ban.yaml")
    print(f"sim_broadcast: bulletin dropped into {BULLETIN_DIR}, airing at {at.time()}", flush=True)


class _Status(BaseHTTPRequestHandler):
    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        body = b'{"status": "ok", "volume": 80}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class StatusApi:
    """The loudspeaker's HTTP status API; unplug() stops it answering (connection refused), plug() brings it back."""

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self.plug()

    def plug(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", STATUS_PORT), _Status)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="sim-speaker-api").start()

    def unplug(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _unplug_once(stop: threading.Event, card: PacedSoundcard, api: StatusApi) -> None:
    """Pull the loudspeaker's cable a moment into the first airing, put it back once the airing is over."""
    while not stop.wait(0.2) and card.played_s == 0:
        pass
    began = time.monotonic()
    if stop.wait(UNPLUG_AFTER_S):
        return
    api.unplug()
    print(f"sim_broadcast: loudspeaker loa-xom-1 UNPLUGGED (its status API on 127.0.0.1:{STATUS_PORT} is gone)",
          flush=True)
    played = -1.0
    while not stop.wait(1.0) and card.played_s != played:  # the sound card stops playing: the airing is over
        played = card.played_s
    print(f"sim_broadcast: the amplifier played {card.played_s:.1f} s of audio in {time.monotonic() - began - 1:.1f} s "
          "(a sound card with a clock: air time is real)", flush=True)
    if stop.wait(REPLUG_AFTER_S):
        return
    api.plug()
    print("sim_broadcast: loudspeaker loa-xom-1 plugged back in", flush=True)


def start(workdir: Path) -> Callable[[], None]:
    """Start the RTP listener and its status API, the paced sound card, schedule the demo bulletin; returns stop()."""
    HOME.mkdir(parents=True, exist_ok=True)
    BULLETIN_DIR.mkdir(parents=True, exist_ok=True)
    for old in BULLETIN_DIR.glob("*.yaml"):
        old.unlink()
    REPORT.unlink(missing_ok=True)
    card = PacedSoundcard(HOME, SOUNDCARD_WAV)
    api = StatusApi()
    stop = threading.Event()
    threads = [threading.Thread(target=_listener, args=(stop,), daemon=True, name="sim-rtp"),
               threading.Thread(target=_drop_bulletin, args=(stop, 4.0, 8.0), daemon=True, name="sim-bulletin"),
               threading.Thread(target=_unplug_once, args=(stop, card, api), daemon=True, name="sim-unplug")]
    for t in threads:
        t.start()

    def stop_all() -> None:
        stop.set()
        for t in threads:
            t.join(3)
        api.unplug()
        card.close()

    return stop_all
