"""Network namespaces for the network tests and benchmark: a router with two ISPs and an "internet".

        internet ns (lo: 198.51.100.1-3)
          |  isp1 10.201.11.0/24      |  isp2 10.201.12.0/24
        isp1 ns                      isp2 ns
          |  wan1 10.201.1.0/24       |  wan2 10.201.2.0/24
        router ns (.2 on both; default via wan1 at start)

Loss and outages are nftables rules in an ISP namespace (no netem in this kernel). Every name carries
the pid and a tag, and `close()` deletes every namespace this lab created.
"""

from __future__ import annotations

import os
import subprocess
from typing import Sequence

TARGETS = ("198.51.100.1", "198.51.100.2", "198.51.100.3")


def run(argv: Sequence[str], input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=input_text, text=True, capture_output=True, check=check)


class Lab:
    """Creates namespaces and veths; remembers them so close() removes exactly those."""

    def __init__(self, tag: str) -> None:
        self.prefix = f"ca{os.getpid()}{tag}"
        self.namespaces: list[str] = []

    def ns(self, short: str) -> str:
        name = f"{self.prefix}-{short}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        for key in ("net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                    "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"):
            self.exec(name, "sysctl", "-qw", key)
        return name

    def ip(self, ns: str, *args: str) -> str:
        return run(["ip", "-n", ns, *args]).stdout

    def exec(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", ns, *argv], check=check)

    def veth(self, ns_a: str, name_a: str, addr_a: str, ns_b: str, name_b: str, addr_b: str | None) -> None:
        run(["ip", "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b, "netns", ns_b])
        self.ip(ns_a, "addr", "add", addr_a, "dev", name_a)
        self.ip(ns_a, "link", "set", name_a, "up")
        if addr_b:
            self.ip(ns_b, "addr", "add", addr_b, "dev", name_b)
        self.ip(ns_b, "link", "set", name_b, "up")

    def nft(self, ns: str, ruleset: str) -> None:
        run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input_text=ruleset)

    def delete(self, ns: str) -> None:
        """Delete one namespace now (a host leaving the network)."""
        run(["ip", "netns", "del", ns])
        self.namespaces.remove(ns)

    def close(self) -> None:
        for name in reversed(self.namespaces):
            run(["ip", "netns", "del", name], check=False)
        self.namespaces.clear()


class DualWan(Lab):
    """The failover topology; `block(n, ...)` breaks ISP n's upstream with an nftables rule."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        self.router = self.ns("r")
        self.isp = {1: self.ns("i1"), 2: self.ns("i2")}
        self.inet = self.ns("net")
        for addr in TARGETS:
            self.ip(self.inet, "addr", "add", f"{addr}/32", "dev", "lo")
        for n, isp in self.isp.items():
            self.exec(isp, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            self.veth(self.router, f"wan{n}", f"10.201.{n}.2/24", isp, "cust", f"10.201.{n}.1/24")
            self.veth(isp, "core", f"10.201.1{n}.1/24", self.inet, f"isp{n}", f"10.201.1{n}.2/24")
            self.ip(isp, "route", "add", "default", "via", f"10.201.1{n}.2")
            self.ip(self.inet, "route", "add", f"10.201.{n}.0/24", "via", f"10.201.1{n}.1")
            self.nft(isp, "table inet lab {\n chain filt {\n  type filter hook forward priority 0;\n }\n}\n")
        self.ip(self.router, "route", "add", "default", "via", "10.201.1.1", "dev", "wan1")

    def block(self, n: int, loss_pct: int = 100) -> None:
        """Drop router→internet packets through ISP n: all of them, or loss_pct % at random."""
        rule = "drop" if loss_pct >= 100 else f"numgen random mod 100 < {loss_pct} drop"
        self.nft(self.isp[n], f"flush chain inet lab filt\nadd rule inet lab filt iifname \"cust\" {rule}\n")

    def heal(self, n: int) -> None:
        self.nft(self.isp[n], "flush chain inet lab filt\n")

    def kill_target(self, address: str) -> None:
        """Make one probe target silent for both ISPs (the internet host drops it)."""
        self.nft(self.inet, "table inet dead {\n chain inp {\n  type filter hook input priority 0;\n"
                            f"  ip daddr {address} drop\n }}\n}}\n")

    def default_dev(self) -> str | None:
        """The interface the router's default route uses now."""
        out = self.ip(self.router, "route", "show", "default").split()
        return out[out.index("dev") + 1] if "dev" in out else None


def link_config(n: int, priority: int, **extra: object) -> dict[str, object]:
    """A LinkConfig dict for wan{n} probing the three internet targets over ICMP."""
    return {"name": f"wan{n}", "interface": f"wan{n}", "gateway": f"10.201.{n}.1", "source": f"10.201.{n}.2",
            "priority": priority, "metered": n == 2, "targets": [{"address": a} for a in TARGETS], **extra}
