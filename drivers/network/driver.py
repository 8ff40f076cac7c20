"""NetworkDriver: WAN links and failover, SNMP polling of network gear, LAN inventory, side by side."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.driver import Context
from drivers.network.config import NetworkConfig
from drivers.network.wan import WanFailover


class NetworkDriver:
    """One coroutine per concern; a failing SNMP device or scan never stops the failover."""

    def __init__(self) -> None:
        self.wan: WanFailover | None = None

    async def run(self, ctx: Context) -> None:
        cfg: NetworkConfig = ctx.config
        ctx.health("starting")
        self.wan = WanFailover(ctx, cfg)
        ctx.on_command("links", self._links_command)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.wan.run())
            if cfg.snmp:
                from drivers.network.snmp import SnmpPoller
                for device in cfg.snmp:
                    tg.create_task(SnmpPoller(ctx, device).run())
            if cfg.inventory is not None:
                from drivers.network.inventory import Inventory
                tg.create_task(Inventory(ctx, cfg.inventory).run())
            if not cfg.links:
                ctx.health("ok", "no WAN links configured")

    async def _links_command(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.wan is not None
        return self.wan.state()
