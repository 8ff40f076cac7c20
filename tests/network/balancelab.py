"""The dual-WAN lab with an office LAN behind the router, NAT, shaped links and ISPs that drop spoofed sources.

        internet ns (lo: 198.51.100.1-3 targets, 198.51.100.10 flow server, 203.0.113.1 "government network")
        isp1 (anti-spoof)        isp2 (anti-spoof)
          | wan1 tbf 40 mbit       | wan2 tbf 10 mbit
        router ns (masquerade on wan1/wan2) -- lan0 10.201.100.1/24 -- lan ns (10.201.100.2, .3)

A flow moved to the other link keeps its old NAT address, which the other ISP drops (as real ISPs do): so a
moved flow breaks instead of silently surviving, and "no flow moved" can be checked end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

from tests.network.netlab import DualWan, run
from tests.network.nsdriver import ROOT
from tests.support.procs import stop_process

SERVER = "198.51.100.10"
GOV = "203.0.113.1"
LAN_HOST, LAN_HOST2 = "10.201.100.2", "10.201.100.3"
NAT = {"10.201.1.2": "wan1", "10.201.2.2": "wan2"}
PORT, AVOID_PORT = 5001, 5002
RATES = {1: "40mbit", 2: "10mbit"}


class BalancedLab(DualWan):
    """DualWan plus the LAN, NAT, shaping, anti-spoofing and a flow server in the internet namespace."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.server: subprocess.Popen[str] | None = None
        try:
            self._office()
        except BaseException:
            self.close()
            raise

    def _office(self) -> None:
        self.lan = self.ns("lan")
        self.exec(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.veth(self.router, "lan0", "10.201.100.1/24", self.lan, "eth0", f"{LAN_HOST}/24")
        self.ip(self.lan, "addr", "add", f"{LAN_HOST2}/24", "dev", "eth0")
        self.ip(self.lan, "route", "add", "default", "via", "10.201.100.1")
        self.nft(self.router, "table ip lab_nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
                              "  oifname { \"wan1\", \"wan2\" } masquerade\n }\n}\n")
        for n, isp in self.isp.items():
            self.nft(isp, "table ip spoof {\n chain antispoof {\n  type filter hook forward priority -10;\n"
                          f"  iifname \"cust\" ip saddr != 10.201.{n}.0/24 drop\n }}\n}}\n")
            run(["tc", "-n", self.router, "qdisc", "add", "dev", f"wan{n}", "root", "tbf", "rate", RATES[n],
                 "burst", "64kb", "latency", "200ms"])
        for addr in (SERVER, GOV):
            self.ip(self.inet, "addr", "add", f"{addr}/32", "dev", "lo")
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.inet, sys.executable, "-m", "tests.network.flows", "serve", str(PORT),
             str(AVOID_PORT)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert self.server.stdout is not None and self.server.stdout.readline().strip() == "ready"

    def wire_bytes(self, n: int) -> int:
        """rx + tx bytes of the router's wan{n} as the kernel counts them (everything that crossed it)."""
        out = json.loads(self.ip(self.router, "-j", "-s", "link", "show", "dev", f"wan{n}"))[0]["stats64"]
        return int(out["rx"]["bytes"]) + int(out["tx"]["bytes"])

    def close(self) -> None:
        if getattr(self, "server", None) is not None:
            stop_process(self.server)
        super().close()


class Flows:
    """A flow client running in the LAN namespace; `result()` waits for it and returns its flow records."""

    def __init__(self, lab: BalancedLab, dst: str = SERVER, port: int = PORT, flows: int = 32,
                 duration: float = 8.0, flow_s: float = 0.0, src: str | None = None, every: float = 0.05,
                 chunk: int = 4096) -> None:
        argv = ["ip", "netns", "exec", lab.lan, sys.executable, "-m", "tests.network.flows", "client",
                "--dst", dst, "--port", str(port), "--flows", str(flows), "--duration", str(duration),
                "--flow-s", str(flow_s), "--every", str(every), "--chunk", str(chunk)]
        if src:
            argv += ["--src", src]
        self.duration = duration
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        self.records: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.append(json.loads(line))

    def result(self) -> list[dict[str, Any]]:
        try:
            self.proc.wait(self.duration + 30)
        finally:
            stop_process(self.proc)
        self._reader.join(5)
        flows = [r for r in self.records if "link" in r]
        for r in flows:
            r["link"] = NAT.get(r["link"], r["link"])
        return flows


def shares(flows: list[dict[str, Any]]) -> dict[str, float]:
    """Percent of acknowledged bytes per link."""
    total = sum(r["bytes"] for r in flows) or 1
    out: dict[str, float] = {}
    for r in flows:
        if r["link"]:
            out[r["link"]] = out.get(r["link"], 0.0) + 100.0 * r["bytes"] / total
    return out


def balanced_config(weights: tuple[int, int] = (3, 1), **failover: Any) -> dict[str, Any]:
    """wan1 and wan2 at equal priority (a balance set by weight), with the three kinds of policy."""
    th = {"up_after_s": 2, "min_hold_s": 1}
    links = []
    for n in (1, 2):
        links.append({"name": f"wan{n}", "interface": f"wan{n}", "gateway": f"10.201.{n}.1",
                      "source": f"10.201.{n}.2", "priority": 1, "weight": weights[n - 1], "metered": n == 2,
                      "targets": [{"address": a} for a in ("198.51.100.1", "198.51.100.2", "198.51.100.3")],
                      "thresholds": th})
    return {"links": links, "failover": {"failback_after_s": 2, **failover}, "report_interval_s": 2,
            "policies": [
                {"name": "gov", "link": "wan1", "destination": f"{GOV}/32"},
                {"name": "recorder", "link": "wan2", "source": f"{LAN_HOST2}/32"},
                {"name": "bulk-port", "link": "wan2", "action": "avoid", "protocol": "tcp",
                 "ports": str(AVOID_PORT)}]}
