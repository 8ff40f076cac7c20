"""LAN inventory: ARP scan of the configured subnets; who appeared, who left, kept across restarts.

The scan (scapy) runs in a short-lived child process. Devices are keyed by MAC; `device_new` fires for a
MAC never seen or back after `device_gone`, which fires once a MAC has been unseen for gone_after_s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent.driver import Context, Event, Reading
from agent.statefile import read_json
from drivers.network.arpscan import scan_in_child
from drivers.network.config import InventoryConfig


class Inventory:
    """Periodic scans and the persisted device table ({data_dir}/inventory.json)."""

    def __init__(self, ctx: Context, cfg: InventoryConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.log = ctx.log.child("inventory")
        self.path = ctx.data_dir / "inventory.json"
        self.devices: dict[str, dict[str, Any]] = {}
        loaded = read_json(self.path)
        if isinstance(loaded, dict) and isinstance(loaded.get("devices"), dict):
            self.devices = loaded["devices"]
        elif self.path.exists():
            ctx.count("bad_inventory_file")
            self.log.warning("inventory_file_unreadable", path=str(self.path))

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.scan_once()
            await asyncio.sleep(max(0.0, self.cfg.interval_s - (time.monotonic() - started)))

    async def scan_once(self) -> None:
        seen: dict[str, tuple[str, str]] = {}
        scanned: list[str] = []
        for subnet in self.cfg.subnets:
            try:
                found = await scan_in_child(subnet, self.cfg.scan_timeout_s)
            except Exception as exc:  # noqa: BLE001 - scapy raises OSError/ValueError/Scapy_Exception alike
                self.ctx.count("arp_scan_error")
                self.log.warning("arp_scan_failed", subnet=str(subnet.cidr), interface=subnet.interface,
                                 error=str(exc))
                continue
            scanned.append(str(subnet.cidr))
            for mac, ip in found.items():
                seen[mac] = (ip, str(subnet.cidr))
        items = self._update(seen, scanned, time.time())
        await self.ctx.write_state(self.path, {"devices": self.devices})
        if items:
            await self.ctx.emit(*items)

    def _update(self, seen: dict[str, tuple[str, str]], scanned: list[str], now: float) -> list[Any]:
        events: list[Any] = []
        for mac, (ip, subnet) in seen.items():
            dev = self.devices.get(mac)
            if dev is None or not dev.get("present", False):
                dev = dev or {"mac": mac, "first_seen": now}
                dev.update(ip=ip, subnet=subnet, last_seen=now, present=True)
                self.devices[mac] = dev
                self.log.info("device_new", mac=mac, ip=ip)
                events.append(Event("device_new", dict(dev)))
            else:
                if dev.get("ip") != ip:
                    self.log.info("device_ip_changed", mac=mac, old=dev.get("ip"), ip=ip)
                dev.update(ip=ip, subnet=subnet, last_seen=now)
        for mac, dev in self.devices.items():
            if dev.get("present") and mac not in seen and dev.get("subnet") in scanned \
                    and now - float(dev.get("last_seen", 0)) >= self.cfg.gone_after_s:
                dev["present"] = False
                self.log.info("device_gone", mac=mac, ip=dev.get("ip"))
                events.append(Event("device_gone", dict(dev)))
        for cidr in scanned:
            count = sum(1 for d in self.devices.values() if d.get("present") and d.get("subnet") == cidr)
            events.append(Reading("lan_devices", count, tags={"subnet": cidr}))
        return events
