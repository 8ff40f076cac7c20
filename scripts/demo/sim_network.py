"""Demo links for the network driver: two namespaced "ISPs" on host-side veths, plus an SNMP agent.

Safe on any host: the demo's links are new veths (cad-wan1, cad-wan2) with addresses in 198.18.0.0/15
(reserved for benchmarking, never a real network); the only routes added are those two connected
subnets. The default route is never touched: demo.yaml runs the failover in observe-only mode. Every
probe target lives on the ISP side of its own veth, so probes need no policy routing either.
Every 50 s ISP 1 goes silent for 20 s (nftables drop), so the demo shows link_down, failover,
link_up and failback. snmpd answers on 127.0.0.1:11661 (community demo-public). Needs root.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

from tests.support.procs import stop_process

NAMESPACES = {1: "cademo-isp1", 2: "cademo-isp2"}
SNMP_PORT = 11661
HEALTHY_S, OUTAGE_S = 30.0, 20.0
SCENE_ENV = "COMMUNE_DEMO_SCENE"  # "quiet": no outages, an empty street (what a day mostly is)


def _run(*argv: str, stdin: str | None = None, check: bool = True) -> None:
    subprocess.run(list(argv), input=stdin, text=True, capture_output=True, check=check)


def _teardown() -> None:
    for n, ns in NAMESPACES.items():
        _run("ip", "link", "del", f"cad-wan{n}", check=False)
        _run("ip", "netns", "del", ns, check=False)


def _setup() -> None:
    _teardown()  # a previous demo that died without cleaning up
    for n, ns in NAMESPACES.items():
        _run("ip", "netns", "add", ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", f"cad-wan{n}", "type", "veth", "peer", "name", "cust", "netns", ns)
        _run("ip", "addr", "add", f"198.18.{n}.2/24", "dev", f"cad-wan{n}")
        _run("ip", "link", "set", f"cad-wan{n}", "up")
        for host in (1, 11, 12):
            _run("ip", "-n", ns, "addr", "add", f"198.18.{n}.{host}/24", "dev", "cust")
        _run("ip", "-n", ns, "link", "set", "cust", "up")
        _run("ip", "netns", "exec", ns, "nft", "-f", "-",
             stdin="table inet demo {\n chain inp {\n  type filter hook input priority 0;\n }\n}\n")


def _outages(stop: threading.Event) -> None:
    ns = NAMESPACES[1]
    while not stop.wait(HEALTHY_S):
        _run("ip", "netns", "exec", ns, "nft", "add rule inet demo inp iifname \"cust\" drop", check=False)
        stop.wait(OUTAGE_S)
        _run("ip", "netns", "exec", ns, "nft", "flush chain inet demo inp", check=False)


def start(workdir: Path) -> Callable[[], None]:
    """Create the demo links and the SNMP agent; the returned function removes them again."""
    if os.geteuid() != 0:
        print("sim_network: not root, so no demo links or SNMP agent (run the demo with sudo)", file=sys.stderr)
        return lambda: None
    _setup()
    snmp_dir = workdir / "snmpd"
    snmp_dir.mkdir(parents=True, exist_ok=True)
    conf = snmp_dir / "snmpd.conf"
    conf.write_text(f"agentAddress udp:127.0.0.1:{SNMP_PORT}\nrocommunity demo-public 127.0.0.1\n")
    snmpd = subprocess.Popen(["snmpd", "-f", "-Lo", "-C", "-m", "", "-c", str(conf), "-p", str(snmp_dir / "pid"),
                              f"--persistentDir={snmp_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    cycler = threading.Thread(target=_outages, args=(stop,), name="sim-network-outages", daemon=True)
    if os.environ.get(SCENE_ENV) != "quiet":  # a quiet commune: no scripted outages (a day's standing traffic)
        cycler.start()

    def stop_all() -> None:
        stop.set()
        if cycler.is_alive():
            cycler.join(5)
        if snmpd.poll() is None:
            stop_process(snmpd)
        _teardown()

    return stop_all
