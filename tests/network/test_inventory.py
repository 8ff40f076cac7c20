"""ARP inventory on a real bridge in a namespace: a host namespace appears, survives a restart, leaves."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.network.netlab import Lab
from tests.network.nsdriver import NsDriver

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


def test_arp_inventory_sees_a_namespace_appear_and_disappear(tmp_path: Path) -> None:
    lab = Lab("inv")
    drv = None
    try:
        router = lab.ns("r")
        lab.ip(router, "link", "add", "br0", "type", "bridge")
        lab.ip(router, "addr", "add", "192.168.77.1/24", "dev", "br0")
        lab.ip(router, "link", "set", "br0", "up")
        host = lab.ns("h1")
        lab.veth(host, "eth0", "192.168.77.10/24", router, "port1", None)
        lab.ip(router, "link", "set", "port1", "master", "br0")
        mac = json.loads(lab.ip(host, "-j", "link", "show", "eth0"))[0]["address"]
        config = {"inventory": {"subnets": [{"cidr": "192.168.77.0/24", "interface": "br0"}], "interval_s": 5,
                                "scan_timeout_s": 1, "gone_after_s": 1}}
        workdir = tmp_path / "drv"
        drv = NsDriver(router, config, workdir)
        new = drv.wait_event("device_new", 30)
        assert new["data"]["mac"] == mac and new["data"]["ip"] == "192.168.77.10"
        first_seen = new["data"]["first_seen"]
        drv.stop()

        # a restart keeps the table: the same device is not announced again
        drv = NsDriver(router, config, workdir)
        t = time.monotonic()
        drv.wait_for(lambda x: x["t"] == "reading" and x["name"] == "lan_devices", 30, "first scan", after=t)
        assert drv.events("device_new") == []

        t = time.monotonic()
        lab.delete(host)
        gone = drv.wait_event("device_gone", 30, after=t)
        assert gone["data"]["mac"] == mac and gone["data"]["first_seen"] == first_seen
        assert gone["data"]["last_seen"] >= first_seen
        saved = json.loads((workdir / "data" / "inventory.json").read_text())
        assert saved["devices"][mac]["present"] is False
    finally:
        if drv is not None:
            drv.stop()
        lab.close()
