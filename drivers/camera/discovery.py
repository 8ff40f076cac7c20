"""WS-Discovery over a raw UDP socket per interface: one multicast Probe, collect ProbeMatches.

The WSDiscovery library skips loopback and rejects some cameras' replies; a plain probe does not.
"""

from __future__ import annotations

import select
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

MCAST = ("239.255.255.250", 3702)
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
}
PROBE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
    'xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
    "<s:Header><a:MessageID>urn:uuid:{id}</a:MessageID>"
    '<a:To s:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
    '<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>'
    "</s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>"
)


@dataclass
class Found:
    address: str  # endpoint reference (urn:uuid:...)
    xaddrs: list[str]
    scopes: list[str] = field(default_factory=list)
    interface: str = ""
    source_ip: str = ""

    @property
    def name(self) -> str:
        for s in self.scopes:
            if "/name/" in s:
                return s.rsplit("/name/", 1)[1]
        return ""

    @property
    def hardware(self) -> str:
        for s in self.scopes:
            if "/hardware/" in s:
                return s.rsplit("/hardware/", 1)[1]
        return ""


def parse_probe_match(data: bytes, relates_to: str | None = None) -> list[Found]:
    """Every ProbeMatch in one reply; [] for anything else (Hello, Probe, garbage)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return []
    if relates_to is not None:
        rel = root.find("s:Header/a:RelatesTo", NS)
        if rel is not None and (rel.text or "").strip() != relates_to:
            return []
    out = []
    for m in root.iterfind("s:Body//d:ProbeMatch", NS):  # some cameras omit the ProbeMatches wrapper
        addr = (m.findtext("a:EndpointReference/a:Address", default="", namespaces=NS)
                or m.findtext("d:EndpointReference/a:Address", default="", namespaces=NS)).strip()
        xaddrs = m.findtext("d:XAddrs", default="", namespaces=NS).split()
        scopes = m.findtext("d:Scopes", default="", namespaces=NS).split()
        if xaddrs:
            out.append(Found(addr, xaddrs, scopes))
    return out


def interface_addresses(names: list[str]) -> list[tuple[str, str]]:
    """(interface, IPv4) pairs to probe from: the named ones, or all with an IPv4 address."""
    import psutil

    out = []
    for name, addrs in psutil.net_if_addrs().items():
        if names and name not in names:
            continue
        for a in addrs:
            if a.family == socket.AF_INET:
                out.append((name, a.address))
    return out


def probe(interfaces: list[tuple[str, str]], timeout_s: float = 2.0) -> list[Found]:
    """Send one Probe from each interface address and gather distinct devices until timeout."""
    found: dict[str, Found] = {}
    socks: list[tuple[socket.socket, str, str]] = []
    try:
        for name, ip in interfaces:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            s.bind((ip, 0))
            s.setblocking(False)
            msg_id = f"urn:uuid:{uuid.uuid4()}"
            s.sendto(PROBE.format(id=msg_id.removeprefix("urn:uuid:")).encode(), MCAST)
            socks.append((s, name, msg_id))
        deadline = time.monotonic() + timeout_s
        while socks and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([s for s, _, _ in socks], [], [], left)
            for s in ready:
                name, msg_id = next((n, m) for x, n, m in socks if x is s)
                try:
                    data, (src, _) = s.recvfrom(65535)
                except OSError:
                    continue
                for f in parse_probe_match(data, msg_id):
                    f.interface, f.source_ip = name, src
                    found.setdefault(f.address or f.xaddrs[0], f)
    finally:
        for s, _, _ in socks:
            s.close()
    return list(found.values())
