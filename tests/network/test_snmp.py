"""SNMP polling against a real net-snmp agent running in a router namespace, v2c and v3 authPriv."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from drivers.network.snmp import counter_delta, rebooted
from tests.network.netlab import Lab
from tests.network.nsdriver import NsDriver
from tests.support.procs import stop_process
from tests.support.wait import wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


def test_counter_delta_handles_wrap_and_reset() -> None:
    assert counter_delta(100, 250, 32) == 150
    assert counter_delta(2**32 - 100, 50, 32) == 150  # 32-bit wrap
    assert counter_delta(1_000_000_000, 10, 32) is None  # "wrap" by more than half the range = reset
    assert counter_delta(2**40, 5, 64) is None  # 64-bit counters do not wrap: going back is a reset


def test_reboot_is_uptime_going_back_but_not_its_wrap() -> None:
    assert not rebooted(1000, 2000, 10)
    assert rebooted(500_000, 300, 10)
    assert not rebooted(2**32 - 500, 500, 10)  # ~497-day TimeTicks wrap, consistent with 10 s elapsed


class RouterWithSnmpd(Lab):
    """A router namespace with one veth to a peer namespace, and snmpd on the router's loopback."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("snmp")
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.router = self.ns("r")
            self.peer = self.ns("p")
            self.veth(self.router, "uplink0", "10.202.0.1/24", self.peer, "eth0", "10.202.0.2/24")
            conf = workdir / "snmpd.conf"
            conf.write_text("agentAddress udp:127.0.0.1:1161\n"
                            "rocommunity labcomm 127.0.0.1\n"
                            "createUser labuser SHA \"lab-auth-pass\" AES \"lab-priv-pass\"\n"
                            "rouser labuser priv\n")
            (workdir / "persist").mkdir()
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.router, "snmpd", "-f", "-Lo", "-C", "-m", "", "-c", str(conf),
                 "-p", str(workdir / "snmpd.pid"), f"--persistentDir={workdir / 'persist'}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: self.exec(self.router, "snmpget", "-v2c", "-c", "labcomm", "-t", "0.5",
                                         "127.0.0.1:1161", "1.3.6.1.2.1.1.3.0", check=False).returncode == 0,
                       timeout=15, what="snmpd answering")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc)
        super().close()


@pytest.fixture
def snmp_lab(tmp_path: Path) -> Iterator[RouterWithSnmpd]:
    lab = RouterWithSnmpd(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@needs_root
@pytest.mark.netns
def test_snmp_rates_status_events_and_unreachable_device(snmp_lab: RouterWithSnmpd, tmp_path: Path) -> None:
    (tmp_path / "auth.key").write_text("lab-auth-pass\n")
    (tmp_path / "priv.key").write_text("lab-priv-pass\n")
    config = {"snmp": [
        {"name": "router", "host": "127.0.0.1", "port": 1161, "community": "labcomm", "interval_s": 1,
         "timeout_s": 1, "interfaces": ["uplink0", "lo"]},
        {"name": "router-v3", "host": "127.0.0.1", "port": 1161, "version": "3", "user": "labuser",
         "auth_key_file": str(tmp_path / "auth.key"), "priv_key_file": str(tmp_path / "priv.key"),
         "priv_protocol": "aes", "interval_s": 1, "timeout_s": 1},
        {"name": "ghost", "host": "127.0.0.1", "port": 1, "community": "x", "interval_s": 1, "timeout_s": 0.3,
         "retries": 0},
    ]}
    drv = NsDriver(snmp_lab.router, config, tmp_path / "drv")
    try:
        traffic = subprocess.Popen(["ip", "netns", "exec", snmp_lab.router, "ping", "-n", "-q", "-i", "0.01",
                                    "-s", "1000", "-w", "60", "10.202.0.2"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rate = drv.wait_for(lambda x: x["t"] == "reading" and x["name"] == "if_out_bps"
                                and x["tags"] == {"device": "router", "if": "uplink0"} and x["value"] > 10_000,
                                timeout=40, what="uplink0 out rate from snmp")
        finally:
            traffic.terminate()
            traffic.wait()
        assert rate["unit"] == "bit/s"
        names = drv.wait_for(lambda x: x["t"] == "reading" and x["name"] == "snmp_sys_descr"
                             and x["tags"]["device"] == "router-v3", timeout=20, what="v3 sysDescr")
        assert "Linux" in names["value"]
        drv.wait_for(lambda x: x["t"] == "reading" and x["name"] == "if_in_errors_ps"
                     and x["tags"]["device"] == "router-v3", timeout=20, what="v3 error rate")
        assert drv.wait_event("snmp_device_down", 20, pred=lambda x: x["data"]["device"] == "ghost")
        # the peer's end goes down: the router's uplink0 loses carrier and snmpd reports it
        t = time.monotonic()
        snmp_lab.ip(snmp_lab.peer, "link", "set", "eth0", "down")
        ev = drv.wait_event("if_oper_status", 30, after=t,
                            pred=lambda x: x["data"]["device"] == "router" and x["data"]["if"] == "uplink0")
        assert ev["data"]["from"] == "up" and ev["data"]["to"] in ("down", "lowerLayerDown")
        # the unreachable device degraded only itself: polling of the others continued all along
        late = [x for x in drv.records() if x["t"] == "reading" and x["name"] == "snmp_up"
                and x["tags"]["device"] == "router" and x["mono"] > t]
        assert late and all(x["value"] == 1 for x in late)
        assert len(drv.events("snmp_device_down")) == 1  # reported once, not on every failed poll
    finally:
        drv.stop()
