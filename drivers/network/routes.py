"""Kernel routing through netlink (pyroute2): the managed default route and per-link probe policy.

Per link: table T holds `default via <gateway> dev <interface>` and a rule `from <source> lookup T`,
so anything bound to the link's source address (probes, and NAT'd traffic of that link) leaves by
that link whatever the main default route says. The default route itself is one route
(`route_table`, `route_metric`) that `set_multipath` replaces atomically: one nexthop per link of the
balance set, weighted.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.children import ChildTimeout, run_child
from agent.logs import KvLogger
from drivers.network.config import LinkConfig


class RouteError(Exception):
    """A netlink operation failed; the message says which and why."""


class RouteManager:
    """Owns one netlink socket in the agent's network namespace."""

    def __init__(self, table: int, metric: int, log: KvLogger) -> None:
        self.table = table
        self.metric = metric
        self.log = log
        self._ipr: AsyncIPRoute | None = None

    async def open(self) -> None:
        self._ipr = AsyncIPRoute()

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    @property
    def ipr(self) -> AsyncIPRoute:
        if self._ipr is None:
            raise RouteError("route manager is not open")
        return self._ipr

    async def ifindex(self, name: str) -> int:
        found = await self.ipr.link_lookup(ifname=name)
        if not found:
            raise RouteError(f"no interface {name}")
        return int(found[0])

    async def ifname(self, index: int) -> str | None:
        links = await self.ipr.link("get", index=index)
        return links[0].get_attr("IFLA_IFNAME") if links else None

    async def _replace_default(self, table: int, link: LinkConfig, metric: int | None) -> None:
        spec: dict[str, object] = {"dst": "0.0.0.0/0", "table": table, "oif": await self.ifindex(link.interface)}
        if link.gateway is not None:
            spec["gateway"] = str(link.gateway)
        await self._replace(spec, metric, f"default route via {link.name} ({link.interface}) in table {table}")

    async def _replace(self, spec: dict[str, object], metric: int | None, what: str) -> None:
        """Replace one route atomically; a refusal names the route."""
        if metric:
            spec["priority"] = metric
        try:
            await self.ipr.route("replace", **spec)
        except NetlinkError as exc:
            raise RouteError(f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}") from None

    async def set_multipath(self, table: int, members: list[LinkConfig], metric: int | None) -> None:
        """One default route over `members`, each nexthop weighted by its link's weight (one member: a plain
        route); replaced atomically, so established flows keep their nexthop unless theirs left."""
        if len(members) == 1:
            await self._replace_default(table, members[0], metric)
            return
        hops = []
        for link in members:
            hop: dict[str, object] = {"oif": await self.ifindex(link.interface), "hops": link.weight - 1}
            if link.gateway is not None:
                hop["gateway"] = str(link.gateway)
            hops.append(hop)
        await self._replace({"dst": "0.0.0.0/0", "table": table, "multipath": hops}, metric,
                            f"multipath default over {', '.join(x.name for x in members)} in table {table}")

    async def set_unreachable(self, table: int) -> None:
        """Nothing leaves by this table (a policy that must not fall back to another link)."""
        try:
            await self.ipr.route("replace", dst="0.0.0.0/0", table=table, type=7)  # RTN_UNREACHABLE
        except NetlinkError as exc:
            raise RouteError(f"unreachable default in table {table}: {exc}") from None

    async def clear_table(self, table: int) -> None:
        with contextlib.suppress(NetlinkError):
            await self.ipr.route("del", dst="0.0.0.0/0", table=table)

    async def members_of_default(self) -> list[tuple[str | None, str | None]]:
        """(gateway, interface) of every nexthop of the managed default route (empty if absent)."""
        async for r in await self.ipr.route("dump", table=self.table):
            if r.get("family") != 2 or r.get("dst_len") != 0 or r.get_attr("RTA_TABLE") != self.table:
                continue
            if (r.get_attr("RTA_PRIORITY") or 0) != self.metric:
                continue
            hops = r.get_attr("RTA_MULTIPATH")
            if not hops:
                oif = r.get_attr("RTA_OIF")
                return [(r.get_attr("RTA_GATEWAY"), await self.ifname(oif) if oif else None)]
            out = []
            for hop in hops:
                gw = dict(hop.get("attrs", [])).get("RTA_GATEWAY")
                out.append((gw, await self.ifname(hop["oif"])))
            return out
        return []

    async def add_rule(self, **spec: object) -> None:
        """Add one policy rule; an identical one already there is fine."""
        try:
            await self.ipr.rule("add", **spec)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise RouteError(f"rule {spec}: {exc}") from None

    async def del_rule(self, **spec: object) -> None:
        try:
            await self.ipr.rule("del", **spec)
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.ESRCH):
                raise RouteError(f"rule {spec}: {exc}") from None

    async def flush_rules(self, low: int, high: int) -> int:
        """Delete every IPv4 rule with a priority in [low, high) (what a previous run left); how many."""
        found = [r.get_attr("FRA_PRIORITY") async for r in await self.ipr.rule("dump", family=2)
                 if low <= (r.get_attr("FRA_PRIORITY") or 0) < high]
        for prio in found:
            with contextlib.suppress(NetlinkError):
                await self.ipr.rule("del", priority=prio, family=2)
        return len(found)

    async def ensure_policy(self, link: LinkConfig, table: int, priority: int) -> None:
        """Install (idempotently) the probe table and `from source` rule of one link."""
        await self._replace_default(table, link, None)
        try:
            await self.ipr.rule("add", table=table, priority=priority, src=str(link.source), src_len=32)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise RouteError(f"rule from {link.source} lookup {table}: {exc}") from None

    async def remove_policy(self, link: LinkConfig, table: int, priority: int) -> None:
        for kind, args in (("rule", {"table": table, "priority": priority, "src": str(link.source), "src_len": 32}),
                           ("route", {"dst": "0.0.0.0/0", "table": table})):
            try:
                await getattr(self.ipr, kind)("del", **args)
            except NetlinkError as exc:
                if exc.code not in (errno.ENOENT, errno.ESRCH):
                    self.log.warning("policy_remove_failed", link=link.name, what=kind, error=str(exc))


_DELETED = re.compile(rb"(\d+) flow entries have been deleted")


async def flush_conntrack(source: str, timeout: float = 10.0) -> int:
    """Delete tracked connections from or NAT'd to `source`; returns how many were deleted."""
    tool = shutil.which("conntrack")
    if tool is None:
        raise RouteError("conntrack tool not installed")
    deleted = 0
    for selector in ("--orig-src", "--reply-dst"):
        try:
            res = await run_child([tool, "-D", selector, source], timeout, capture_stdout=False)
        except ChildTimeout:
            raise RouteError("conntrack timed out") from None
        m = _DELETED.search(res.stderr)
        if m:
            deleted += int(m.group(1))
        elif res.code not in (0, 1):
            raise RouteError(f"conntrack exited {res.code}: {res.stderr.decode(errors='replace')[:200]}")
    return deleted
