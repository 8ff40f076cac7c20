"""One ARP scan in a short-lived child process: scapy costs ~70 MB of RSS, which the daemon
should not carry for a scan that runs a few seconds every few minutes.

    python -m drivers.network.arpscan CIDR INTERFACE TIMEOUT   ->  {"mac": "ip", ...} on stdout
"""

from __future__ import annotations

import json
import sys

from agent.children import ChildTimeout, run_child
from drivers.network.config import ScanSubnet

SCAN_OUTPUT_BYTES = 512 * 1024  # a /20 (the largest scan allowed) with every host answering is ~160 KB of JSON


def arp_scan(cidr: str, interface: str, timeout: float) -> dict[str, str]:
    """MAC -> IP of every host answering a broadcast ARP who-has on the subnet (blocking)."""
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    answered, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=cidr), iface=interface, timeout=timeout, verbose=0)
    return {reply.hwsrc.lower(): reply.psrc for _, reply in answered}


async def scan_in_child(subnet: ScanSubnet, timeout: float) -> dict[str, str]:
    """Run arp_scan in a child (argv, no shell); raise OSError with the child's last words on failure."""
    try:
        res = await run_child([sys.executable, "-m", "drivers.network.arpscan", str(subnet.cidr), subnet.interface,
                               str(timeout)], timeout + 30, max_output=SCAN_OUTPUT_BYTES)
    except ChildTimeout:
        raise OSError("ARP scan did not finish") from None
    if res.code != 0:
        lines = res.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(lines[-1] if lines else f"ARP scan exited with {res.code}")
    found = json.loads(res.stdout)
    if not isinstance(found, dict):
        raise OSError("ARP scan gave no table")
    return {str(k): str(v) for k, v in found.items()}


if __name__ == "__main__":
    print(json.dumps(arp_scan(sys.argv[1], sys.argv[2], float(sys.argv[3]))))
