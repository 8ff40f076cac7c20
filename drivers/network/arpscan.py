"""One ARP scan in a short-lived child process: scapy costs ~70 MB of RSS, which the daemon
should not carry for a scan that runs a few seconds every few minutes.

    python -m drivers.network.arpscan CIDR INTERFACE TIMEOUT   ->  {"mac": "ip", ...} on stdout
"""

from __future__ import annotations

import asyncio
import json
import sys

from drivers.network.config import ScanSubnet


def arp_scan(cidr: str, interface: str, timeout: float) -> dict[str, str]:
    """MAC -> IP of every host answering a broadcast ARP who-has on the subnet (blocking)."""
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    answered, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=cidr), iface=interface, timeout=timeout, verbose=0)
    return {reply.hwsrc.lower(): reply.psrc for _, reply in answered}


async def scan_in_child(subnet: ScanSubnet, timeout: float) -> dict[str, str]:
    """Run arp_scan in a child (argv, no shell); raise OSError with the child's last words on failure."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.network.arpscan", str(subnet.cidr), subnet.interface, str(timeout),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout + 30):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise OSError("ARP scan did not finish") from None
    except asyncio.CancelledError:
        proc.kill()
        raise
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise OSError(lines[-1] if lines else f"ARP scan exited with {proc.returncode}")
    found = json.loads(out)
    if not isinstance(found, dict):
        raise OSError("ARP scan gave no table")
    return {str(k): str(v) for k, v in found.items()}


if __name__ == "__main__":
    print(json.dumps(arp_scan(sys.argv[1], sys.argv[2], float(sys.argv[3]))))
