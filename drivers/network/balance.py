"""The balance set and the policies in the kernel: multipath default, avoid tables, policy rules, sticky marks.

Rule priorities above `rule_priority` (the probe rules `from <source>` sit at +0..+N):
  +99        lookup main suppress_prefixlength 0   (LAN and connected routes before anything below)
  +100+j     policy j: pin → the link's table; avoid → the link's avoid table (the set without it)
  +200+i     fwmark mark_base+i → link i's table   (a forwarded connection stays on the link it began on)
  +300       iif lo uidrange <agent uid> → the primary's table (the agent's own traffic, not forwarded)
Sticky marks are one nftables table (`ip commune_links`), loaded atomically with `nft -f -`: conntrack
remembers the link a connection first left by, and its later packets are marked to follow it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from agent.children import ChildTimeout, run_child
from agent.logs import KvLogger
from drivers.network.config import LinkConfig, NetworkConfig, Policy
from drivers.network.routes import RouteError, RouteManager

NFT_TABLE = "commune_links"
MARK_MASK = 0xFFFFFF
HASH_POLICY = Path("/proc/sys/net/ipv4/fib_multipath_hash_policy")
SUPPRESS, POLICIES, MARKS, AGENT, END = 99, 100, 200, 300, 301
IPPROTO = {"tcp": 6, "udp": 17}


class BalanceRouting:
    """Applies set changes and policies; idempotent, and everything it adds is in its own priority range."""

    def __init__(self, cfg: NetworkConfig, routes: RouteManager, log: KvLogger) -> None:
        self.cfg = cfg
        self.routes = routes
        self.log = log
        self.base = cfg.failover.rule_priority
        self.index = {link.name: i for i, link in enumerate(cfg.links)}
        self.uid = os.getuid()
        self._agent_table: int | None = None
        self._pins_on: dict[int, bool] = {}

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        fo = self.cfg.failover
        left = await self.routes.flush_rules(self.base + SUPPRESS, self.base + END)
        if left:
            self.log.info("balance_rules_flushed", count=left)
        if fo.l4_hash:
            _write_sysctl(HASH_POLICY, "1")
        await self.routes.add_rule(table=254, priority=self.base + SUPPRESS, suppress_prefixlen=0)
        if fo.sticky:
            for i in range(len(self.cfg.links)):
                await self.routes.add_rule(table=self.cfg.table_of(i), priority=self.base + MARKS + i,
                                           fwmark=fo.mark_base + i, fwmask=MARK_MASK)
            await self._nft(self._sticky_ruleset())

    async def stop(self) -> None:
        await self.routes.flush_rules(self.base + SUPPRESS, self.base + END)
        for i in range(len(self.cfg.links)):
            await self.routes.clear_table(self.cfg.avoid_table_of(i))
        if self.cfg.failover.sticky:
            await self._nft(f"table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\n")

    # --- applying a set ---------------------------------------------------------------------------

    async def apply(self, members: list[LinkConfig], up: list[LinkConfig], primary: LinkConfig) -> None:
        """Route by the set `members`; `up` are all links judged up (best first), for avoid tables."""
        await self.routes.set_multipath(self.cfg.failover.route_table, members, self.cfg.failover.route_metric)
        for i, link in enumerate(self.cfg.links):
            await self._avoid_table(i, link, members, up)
        for j, policy in enumerate(self.cfg.policies):
            if policy.action == "pin":
                await self._pin(j, policy, any(x.name == policy.link for x in up))
        if self.cfg.failover.pin_agent:
            table = self.cfg.table_of(self.index[primary.name])
            if table != self._agent_table:
                spec = {"priority": self.base + AGENT, "uid_range": f"{self.uid}:{self.uid}", "iifname": "lo"}
                await self.routes.add_rule(table=table, **spec)
                if self._agent_table is not None:
                    await self.routes.del_rule(table=self._agent_table, **spec)
                self._agent_table = table

    async def _avoid_table(self, i: int, link: LinkConfig, members: list[LinkConfig], up: list[LinkConfig]) -> None:
        if not any(p.action == "avoid" and p.link == link.name for p in self.cfg.policies):
            return
        table = self.cfg.avoid_table_of(i)
        others = [x for x in members if x.name != link.name] or [x for x in up if x.name != link.name][:1]
        if others:
            await self.routes.set_multipath(table, others, None)
        elif all(p.fallback for p in self.cfg.policies if p.action == "avoid" and p.link == link.name):
            await self.routes.clear_table(table)  # falls through to the main table: this link, as allowed
        else:
            await self.routes.set_unreachable(table)

    async def _pin(self, j: int, policy: Policy, link_up: bool) -> None:
        """A pin without fallback stays whatever happens; with fallback it is lifted while its link is down."""
        on = link_up or not policy.fallback
        if self._pins_on.get(j) == on:
            return
        spec = self.rule_spec(j, policy)
        if on:
            await self.routes.add_rule(**spec)
        else:
            await self.routes.del_rule(**spec)
        self._pins_on[j] = on

    async def install_policies(self) -> None:
        """Avoid rules never change (their tables do); pins are (re)applied with each set."""
        for j, policy in enumerate(self.cfg.policies):
            if policy.action == "avoid":
                await self.routes.add_rule(**self.rule_spec(j, policy))

    def rule_spec(self, j: int, policy: Policy) -> dict[str, Any]:
        idx = self.index[policy.link]
        table = self.cfg.table_of(idx) if policy.action == "pin" else self.cfg.avoid_table_of(idx)
        spec: dict[str, Any] = {"table": table, "priority": self.base + POLICIES + j}
        if policy.destination is not None:
            spec.update(dst=str(policy.destination.network_address), dst_len=policy.destination.prefixlen)
        if policy.source is not None:
            spec.update(src=str(policy.source.network_address), src_len=policy.source.prefixlen)
        if policy.protocol is not None:
            spec["ip_proto"] = IPPROTO[policy.protocol]
        if policy.ports is not None:
            lo, hi = policy.port_range
            spec["dport_range"] = f"{lo}:{hi}"
        return spec

    # --- nftables ---------------------------------------------------------------------------------

    def _sticky_ruleset(self) -> str:
        fo = self.cfg.failover
        marks = "".join(f"  ct mark 0 oifname \"{link.interface}\" ct mark set {fo.mark_base + i:#x}\n"
                        for i, link in enumerate(self.cfg.links))
        return (f"table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\ntable ip {NFT_TABLE} {{\n"
                " chain pre {\n  type filter hook prerouting priority mangle; policy accept;\n"
                "  ct direction original ct mark != 0 meta mark set ct mark\n }\n"
                " chain post {\n  type filter hook postrouting priority mangle; policy accept;\n"
                f"{marks} }}\n}}\n")

    async def _nft(self, ruleset: str) -> None:
        tool = shutil.which("nft")
        if tool is None:
            raise RouteError("nft (nftables) is not installed: set failover.sticky: false or install it")
        try:
            res = await run_child([tool, "-f", "-"], 10.0, input=ruleset.encode(), capture_stdout=False)
        except ChildTimeout:
            raise RouteError("nft timed out") from None
        if res.code != 0:
            raise RouteError(f"nft exited {res.code}: {res.stderr.decode(errors='replace').strip()[:300]}")


def policy_rows(cfg: NetworkConfig, up: set[str]) -> list[dict[str, Any]]:
    """The policies as `commune-agent links` shows them, with whether each is in force now."""
    rows = []
    for p in cfg.policies:
        match = " ".join(x for x in (
            f"to {p.destination}" if p.destination else "", f"from {p.source}" if p.source else "",
            f"{p.protocol}" + (f" port {p.ports}" if p.ports else "") if p.protocol else "") if x)
        if p.action == "pin":
            state = "pinned" if p.link in up else ("lifted: link down" if p.fallback else "dropped: link down")
        else:
            state = "kept off" if len(up - {p.link}) else ("allowed: only link up" if p.fallback
                                                           else "dropped: only link up")
        rows.append({"name": p.name, "link": p.link, "action": p.action, "match": match, "fallback": p.fallback,
                     "state": state})
    return rows


def _write_sysctl(path: Path, value: str) -> None:
    """A sysctl of this network namespace (the agent's own /proc/sys view), written directly."""
    try:
        path.write_text(value)
    except OSError as exc:
        raise RouteError(f"cannot set {path}: {exc}") from None
