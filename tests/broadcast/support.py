"""Real receivers for the broadcast tests: an RTP multicast listener and an HTTP digest-auth speaker."""

from __future__ import annotations

import hashlib
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class RtpPacket:
    arrival: float  # monotonic
    version: int
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes


@dataclass
class RtpReceiver:
    """Joins a multicast group on 127.0.0.1 and records every RTP packet with its arrival time."""

    group: str
    port: int
    packets: list[RtpPacket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.group, self.port))
        mreq = struct.pack("4s4s", socket.inet_aton(self.group), socket.inet_aton("127.0.0.1"))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            if len(data) < 12:
                continue
            b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
            with self._lock:
                self.packets.append(RtpPacket(now, b0 >> 6, bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, data[12:]))

    def snapshot(self) -> list[RtpPacket]:
        with self._lock:
            return list(self.packets)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def _h(algorithm: str, text: str) -> str:
    return (hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5)(text.encode()).hexdigest()


class DigestSpeaker:
    """An IP speaker's audio endpoint: POST audio/basic behind RFC 7616 digest auth (SHA-256 and MD5, qop=auth)."""

    def __init__(self, user: str, password: str, path: str = "/axis-cgi/audio/transmit.cgi",
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5")) -> None:
        self.user, self.password, self.path, self.algorithms = user, password, path, algorithms
        self.realm = "AXIS_ACCC8E000000"
        self.nonces: set[str] = set()
        self.bodies: list[bytes] = []
        self.rejected = 0
        self.content_types: list[str] = []
        speaker = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def _challenge(self) -> None:
                nonce = secrets.token_hex(16)
                speaker.nonces.add(nonce)
                self.send_response(401)
                for alg in speaker.algorithms:
                    self.send_header("WWW-Authenticate", f'Digest realm="{speaker.realm}", nonce="{nonce}", '
                                                         f'algorithm={alg}, qop="auth", opaque="abc"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path != speaker.path:
                    self.send_error(404)
                    return
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Digest "):
                    self._challenge()
                    return
                p = dict((k, v.strip('"')) for k, v in
                         (item.strip().split("=", 1) for item in auth[7:].split(",")))
                alg = p.get("algorithm", "MD5")
                ha1 = _h(alg, f"{p.get('username')}:{speaker.realm}:{speaker.password}")
                ha2 = _h(alg, f"POST:{p.get('uri')}")
                expect = _h(alg, f"{ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:{p.get('qop')}:{ha2}")
                if (p.get("username") != speaker.user or p.get("nonce") not in speaker.nonces
                        or p.get("response") != expect or p.get("qop") != "auth"):
                    speaker.rejected += 1
                    self._challenge()
                    return
                speaker.content_types.append(self.headers.get("Content-Type", ""))
                speaker.bodies.append(body)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SipPeer:
    """A SIP user agent on UDP loopback that checks an OPTIONS request line by line and answers 200 OK (RFC 3261
    §8.2.6: Via, From, To, Call-ID and CSeq copied, a To tag added); `answer = False` makes it a silent one."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = True
        self.requests: list[dict[str, str]] = []
        self.malformed: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            req = self._parse(data.decode("utf-8", "replace"))
            if req is None:
                continue
            self.requests.append(req)
            if self.answer:
                reply = "\r\n".join([
                    "SIP/2.0 200 OK", f"Via: {req['via']};received={peer[0]}", f"From: {req['from']}",
                    f"To: {req['to']};tag=spk{len(self.requests)}", f"Call-ID: {req['call-id']}",
                    f"CSeq: {req['cseq']}",
                    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE", "Accept: application/sdp", "Content-Length: 0", "", ""])
                self.sock.sendto(reply.encode(), peer)

    def _parse(self, text: str) -> dict[str, str] | None:
        head, sep, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        method, _, rest = lines[0].partition(" ")
        uri, _, version = rest.partition(" ")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        problems = [what for what, ok in (
            ("request line", method == "OPTIONS" and uri.startswith("sip:") and version == "SIP/2.0"),
            ("CRLF CRLF end", sep == "\r\n\r\n" and body == ""),
            ("Via", fields.get("via", "").startswith("SIP/2.0/UDP ") and ";branch=z9hG4bK" in fields.get("via", "")),
            ("Max-Forwards", fields.get("max-forwards") == "70"),
            ("From tag", ";tag=" in fields.get("from", "")),
            ("To", fields.get("to", "").strip("<>") == uri),
            ("Call-ID", bool(fields.get("call-id"))),
            ("CSeq", fields.get("cseq") == "1 OPTIONS"),
            ("Content-Length", fields.get("content-length") == "0")) if not ok]
        if problems:
            self.malformed.append(", ".join(problems))
            return None
        return {"uri": uri, **fields}

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


class StatusApi:
    """A speaker's HTTP status API on loopback answering `status` to every GET."""

    def __init__(self, status: int = 200, bind: str = "127.0.0.1") -> None:
        self.status = status
        self.hits = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                api.hits += 1
                body = b'{"status": "ok"}'
                self.send_response(api.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((bind, 0), Handler)
        self.url = f"http://{bind}:{self.server.server_address[1]}/api/info/status"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
