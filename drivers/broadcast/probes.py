"""Is a loudspeaker there? ICMP echo, its HTTP status API, SIP OPTIONS: None when it answered, else why not.

ICMP uses an unprivileged ping socket where the kernel allows one (net.ipv4.ping_group_range) and a raw socket
otherwise (the systemd unit grants CAP_NET_RAW); both are connected to the speaker, so only its replies arrive.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import secrets
import socket
import struct
from urllib.parse import urlsplit

from agent.icmp import ICMP_ECHO_REPLY, echo_request

SIP_T1 = 0.5  # RFC 3261 retransmission timer for requests over UDP: 0.5 s, doubling


def _icmp_socket(host: str) -> socket.socket:
    error: OSError | None = None
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            sock = socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP)
        except OSError as exc:  # EACCES: not in ping_group_range (dgram) or no CAP_NET_RAW (raw)
            error = exc
            continue
        sock.setblocking(False)
        try:
            sock.connect((host, 0))
        except OSError:
            sock.close()
            raise
        return sock
    raise error or OSError("no ICMP socket")


async def ping(host: str, timeout: float, tries: int = 3) -> str | None:
    """Echo requests `timeout / tries` apart; the first matching echo reply within `timeout` is enough."""
    loop = asyncio.get_running_loop()
    try:
        sock = _icmp_socket(host)
    except OSError as exc:
        return f"ping: {exc.strerror or exc}"
    ident, payload = int.from_bytes(os.urandom(2), "big"), secrets.token_bytes(16)
    seqs: set[int] = set()
    try:
        async with asyncio.timeout(timeout):
            for n in range(tries):
                seqs.add(n + 1)
                try:
                    await loop.sock_sendall(sock, echo_request(ident, n + 1, payload))
                except OSError as exc:  # no route, link down on our side
                    return f"ping: {exc.strerror or exc}"
                try:
                    async with asyncio.timeout(timeout / tries):
                        while True:
                            data = await loop.sock_recv(sock, 2048)
                            if data and data[0] >> 4 == 4:  # a raw socket hands the IP header too
                                data = data[(data[0] & 0x0F) * 4:]
                            if len(data) >= 8 and data[0] == ICMP_ECHO_REPLY and data[8:] == payload:
                                if struct.unpack("!H", data[6:8])[0] in seqs:
                                    return None
                except TimeoutError:
                    continue
                except OSError as exc:  # host unreachable reported by the stack
                    return f"ping: {exc.strerror or exc}"
    except TimeoutError:
        pass
    finally:
        sock.close()
    return f"ping: no reply in {timeout:g} s"


def _http_get(url: str, timeout: float) -> str | None:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        resp = conn.getresponse()
        resp.read(65536)
    except OSError as exc:
        return f"http: {exc.strerror or exc}"
    except http.client.HTTPException as exc:
        return f"http: {type(exc).__name__}"
    finally:
        conn.close()
    return None if resp.status < 500 else f"http: status API answered {resp.status}"


async def http_status(url: str, timeout: float) -> str | None:
    """GET the speaker's status API: any answer below 500 (a login asked for included) says it is alive."""
    try:
        async with asyncio.timeout(timeout + 0.5):
            return await asyncio.to_thread(_http_get, url, timeout)
    except TimeoutError:
        return f"http: no answer in {timeout:g} s"


_SIP_TARGET = re.compile(r"^(?:sip:(?:(?P<user>[^@\s]+)@)?)?(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?$")


def sip_options(target: str, local: tuple[str, int], branch: str, call_id: str, tag: str) -> tuple[bytes, str]:
    """An OPTIONS request as RFC 3261 §11 sends it (a keep-alive "are you there"); returns it and its request URI."""
    m = _SIP_TARGET.match(target)
    if m is None:
        raise ValueError(f"not a SIP address: {target!r}")
    host, port, user = m["host"], int(m["port"] or 5060), m["user"]
    uri = f"sip:{user + '@' if user else ''}{host}:{port}"
    lhost, lport = local
    lines = [f"OPTIONS {uri} SIP/2.0",
             f"Via: SIP/2.0/UDP {lhost}:{lport};branch={branch};rport",
             "Max-Forwards: 70",
             f"From: <sip:commune-agent@{lhost}>;tag={tag}",
             f"To: <{uri}>",
             f"Call-ID: {call_id}",
             "CSeq: 1 OPTIONS",
             f"Contact: <sip:commune-agent@{lhost}:{lport}>",
             "Accept: application/sdp",
             "User-Agent: commune-agent",
             "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode(), uri


def sip_answer(data: bytes, call_id: str, branch: str) -> int | None:
    """The status code of a response to our OPTIONS (same Call-ID, CSeq and Via branch), else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    m = re.match(r"^SIP/2\.0 (\d{3}) ", lines[0] + " ")
    if m is None:
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = {"i": "call-id", "v": "via"}.get(name.strip().lower(), name.strip().lower())
            fields.setdefault(key, value.strip())
    if (fields.get("call-id") != call_id or fields.get("cseq", "").split() != ["1", "OPTIONS"]
            or f"branch={branch}" not in fields.get("via", "")):
        return None
    return int(m[1])


async def sip_ping(target: str, timeout: float) -> str | None:
    """SIP OPTIONS over UDP, retransmitted at T1 doubling (RFC 3261 timer E); any final SIP answer = alive."""
    m = _SIP_TARGET.match(target)
    if m is None:
        return f"sip: not a SIP address {target!r}"
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        try:
            addr = (socket.gethostbyname(m["host"]), int(m["port"] or 5060))
            sock.connect(addr)
        except OSError as exc:
            return f"sip: {exc.strerror or exc}"
        branch, call_id, tag = f"z9hG4bK{secrets.token_hex(8)}", f"{secrets.token_hex(12)}@commune-agent", \
            secrets.token_hex(4)
        request, _ = sip_options(target, sock.getsockname(), branch, call_id, tag)
        wait = SIP_T1
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await loop.sock_sendall(sock, request)
                    async with asyncio.timeout(wait):
                        while True:
                            code = sip_answer(await loop.sock_recv(sock, 65535), call_id, branch)
                            if code is not None and code >= 200:
                                return None
                except TimeoutError:
                    wait = min(wait * 2, 4.0)
                except ConnectionRefusedError:  # ICMP port unreachable: the host is there, its SIP is not
                    return "sip: port closed (nothing listens for SIP)"
                except OSError as exc:
                    return f"sip: {exc.strerror or exc}"
    except TimeoutError:
        return f"sip: no answer to OPTIONS in {timeout:g} s"
    finally:
        sock.close()
