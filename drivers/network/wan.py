"""The WAN side of the driver: link monitors → verdicts → failover decisions → routes, events, state file."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psutil

from agent.driver import Context, Event, LinkState, Priority, Reading
from agent.statefile import read_json
from drivers.network.balance import BalanceRouting, policy_rows
from drivers.network.budget import MB, BudgetMeter, Crossing, boot_id
from drivers.network.config import LinkConfig, NetworkConfig
from drivers.network.failover import Decision, FailoverPolicy, LinkView, rank
from drivers.network.hooks import run_hooks
from drivers.network.linkjudge import Verdict
from drivers.network.monitor import LinkMonitor
from drivers.network.routes import RouteError, RouteManager, flush_conntrack
from drivers.network.statefile import state_path_of

JUDGE_TICK_S = 0.25  # slow conditions (loss over the window, recovery) are re-judged at least this often
POLICY_RETRY_S = 30.0  # probe policy rules are re-checked this often (an interface may appear later)
BUDGET_SAMPLE_S = 5.0  # interface counters are read this often for the data budgets
BUDGET_SAVE_S = 60.0  # budget totals are written to their state file this often (and on every crossing)


def wall(mono: float) -> float:
    """Convert a monotonic instant to wall time for reports."""
    return time.time() - (time.monotonic() - mono)


class WanFailover:
    """Runs every link's probes and moves the default route when the verdicts say so."""

    def __init__(self, ctx: Context, cfg: NetworkConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.log = ctx.log.child("wan")
        self.links: dict[str, LinkConfig] = {link.name: link for link in cfg.links}
        self.order = {link.name: i for i, link in enumerate(cfg.links)}
        self._wake = asyncio.Event()
        self.monitors = {link.name: LinkMonitor(link, self._wake.set, can_be_sparse=_can_be_sparse(link))
                         for link in cfg.links}
        self.budgets = {link.name: BudgetMeter(link.name, link.budget, ctx.timezone)
                        for link in cfg.links if link.budget is not None}
        self.budget_path = ctx.data_dir / "budget.json"
        self.balance: BalanceRouting | None = None
        fo = cfg.failover
        self.policy = FailoverPolicy(fo.failback_after_s, fo.max_switches_per_hour)
        self.routes: RouteManager | None = None
        self.current_since = time.monotonic()
        self.all_down = False
        self.state_path = state_path_of(cfg, ctx.data_dir)
        self._background: set[asyncio.Task[Any]] = set()

    # --- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        fo = self.cfg.failover
        if fo.manage_routes or fo.policy_routing:
            self.routes = RouteManager(fo.route_table, fo.route_metric, self.log)
            await self.routes.open()
        try:
            self._restore_budgets()
            await self._adopt_current_route()
            if fo.manage_routes and fo.policy_routing and self.routes is not None:
                await self._start_balance(self.routes)
            self.write_state()
            async with asyncio.TaskGroup() as tg:
                for monitor in self.monitors.values():
                    tg.create_task(monitor.run())
                if fo.policy_routing:
                    tg.create_task(self._maintain_policy())
                tg.create_task(self._judge_loop())
                tg.create_task(self._report_loop())
                if self.budgets:
                    tg.create_task(self._budget_loop())
        finally:
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            if self.routes is not None:
                if self.balance is not None:
                    try:
                        await self.balance.stop()
                    except (RouteError, OSError) as exc:
                        self.log.warning("balance_remove_failed", error=str(exc))
                if fo.policy_routing:
                    await self._remove_policy()
                self.routes.close()
            if self.budgets:
                await self._save_budgets()

    async def _start_balance(self, routes: RouteManager) -> None:
        """Sticky marks, the LAN-first rule and the avoid policies; a failure is logged and counted, the failover
        itself still works without them."""
        self.balance = BalanceRouting(self.cfg, routes, self.log)
        try:
            await self.balance.start()
            await self.balance.install_policies()
        except (RouteError, OSError) as exc:
            self.ctx.count("balance_error")
            self.log.error("balance_setup_failed", error=str(exc))

    async def _adopt_current_route(self) -> None:
        """Start from the link the kernel's default route already uses, so a restart moves nothing."""
        if self.routes is None or not self.cfg.failover.manage_routes:
            return
        try:
            hops = await self.routes.members_of_default()
        except (RouteError, OSError) as exc:
            self.log.warning("default_route_unreadable", error=str(exc))
            return
        if not hops:
            self.log.info("default_route_absent", table=self.cfg.failover.route_table)
            return
        views = {v.name: v for v in self._views()}
        found = [views[link.name] for gw, dev in hops for link in self.cfg.links
                 if dev == link.interface and (link.gateway is None or str(link.gateway) == gw)]
        if len(found) != len(hops):
            self.log.info("default_route_foreign", hops=" ".join(f"{gw}@{dev}" for gw, dev in hops))
            return
        self.policy.adopt(found)
        self.current_since = time.monotonic()
        self.ctx.set_link(self._link_state())
        self.log.info("default_route_adopted", link=self.policy.current, members=",".join(self.policy.members))

    async def _maintain_policy(self) -> None:
        assert self.routes is not None
        while True:
            for i, link in enumerate(self.cfg.links):
                try:
                    await self.routes.ensure_policy(link, self.cfg.table_of(i), self.cfg.failover.rule_priority + i)
                except (RouteError, OSError) as exc:
                    self.ctx.count("policy_route_error")
                    self.log.warning("policy_route_failed", link=link.name, error=str(exc))
            await asyncio.sleep(POLICY_RETRY_S)

    async def _remove_policy(self) -> None:
        assert self.routes is not None
        for i, link in enumerate(self.cfg.links):
            try:
                await self.routes.remove_policy(link, self.cfg.table_of(i), self.cfg.failover.rule_priority + i)
            except (RouteError, OSError) as exc:
                self.log.warning("policy_remove_failed", link=link.name, error=str(exc))

    # --- judging and deciding ---------------------------------------------------------------------

    async def _judge_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(JUDGE_TICK_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            events: list[Event] = []
            for monitor in self.monitors.values():
                for verdict in monitor.judge.evaluate(now):
                    events.append(self._verdict_event(verdict))
            changed = bool(events)
            if self.cfg.failover.enabled and self.links:
                decision = self.policy.decide(self._views(), now)
                if decision is not None:
                    event = await self._apply(decision, now)
                    if event is not None:
                        events.append(event)
                        changed = True
                events.extend(self._all_down_event())
            self._update_sparse()
            if changed:
                self.write_state()
                self._health()
            if events:
                await self.ctx.emit(*events)

    def _views(self) -> list[LinkView]:
        out = []
        for name, monitor in self.monitors.items():
            link, judge = self.links[name], monitor.judge
            role = "standby" if "leave_set" in self._actions(name) else link.role
            out.append(LinkView(name, link.priority, link.weight, self.order[name], judge.state, judge.since,
                                judge.reason, role, link.metered))
        return out

    def _actions(self, name: str) -> set[str]:
        meter = self.budgets.get(name)
        return meter.actions() if meter is not None else set()

    def _link_state(self) -> LinkState:
        """What the other drivers read: the agent's own link (the set's primary) and its budget's verdict."""
        name = self.policy.current
        if name is None:
            return LinkState()
        link, actions = self.links[name], self._actions(name)
        meter = self.budgets.get(name)
        return LinkState(name, link.metered, time.time(), defer_bulk="defer_bulk" in actions,
                         slow_telemetry="slow_telemetry" in actions,
                         budget_pct=round(meter.used_pct(), 1) if meter is not None else None)

    def _update_sparse(self) -> None:
        """Standby links (and links whose budget says sparse_probes) are probed sparsely unless needed: in the
        set, or no other link is up to carry traffic. A link's first verdict is always at full rate."""
        members = set(self.policy.members)
        up_elsewhere = {n for n, m in self.monitors.items() if m.judge.state == "up"}
        for name, monitor in self.monitors.items():
            link = self.links[name]
            wants = link.role == "standby" or "sparse_probes" in self._actions(name)
            needed = name in members or not (up_elsewhere - {name}) or monitor.judge.state == "unknown"
            if wants and not needed and not monitor.sparse:
                self.log.info("probes_sparse", link=name, interval_s=link.standby_interval_s)
            elif monitor.sparse and (needed or not wants):
                self.log.info("probes_full", link=name, interval_s=link.interval_s)
            monitor.set_sparse(wants and not needed)

    def _verdict_event(self, verdict: Verdict) -> Event:
        link_name, _, target = verdict.subject.partition("/")
        data: dict[str, Any] = {"link": link_name, "reason": verdict.reason, "measured": verdict.measured}
        if target:
            data["target"] = target
            kind = "probe_up" if verdict.state == "up" else "probe_down"
            self.log.info(kind, link=link_name, target=target, reason=verdict.reason)
            return Event(kind, data, severity="info")
        kind = "link_up" if verdict.state == "up" else "link_down"
        link = self.links[link_name]
        data.update(interface=link.interface, in_use=self.policy.current == link_name)
        self.log.info(kind, link=link_name, reason=verdict.reason, in_use=data["in_use"])
        self._spawn(run_hooks(self.cfg.failover.hooks, kind, {"link": link_name, "reason": verdict.reason},
                              self.log))
        return Event(kind, data, severity="warning" if kind == "link_down" else "info")

    def _all_down_event(self) -> list[Event]:
        down = all(m.judge.state == "down" for m in self.monitors.values())
        if down == self.all_down:
            return []
        self.all_down = down
        if down:
            reasons = {name: m.judge.reason for name, m in self.monitors.items()}
            self.log.error("all_links_down", current=self.policy.current)
            return [Event("all_links_down", {"links": reasons, "current": self.policy.current},
                          severity="critical", priority=Priority.ALARM)]
        self.log.info("links_restored")
        return []

    async def _apply(self, decision: Decision, now: float) -> Event | None:
        link = self.links[decision.to]
        fo = self.cfg.failover
        members = [self.links[m] for m in decision.members]
        if fo.manage_routes and self.routes is not None:
            try:
                if self.balance is not None:
                    up = sorted((v for v in self._views() if v.state == "up"), key=rank)
                    await self.balance.apply(members, [self.links[v.name] for v in up], link)
                else:
                    await self.routes.set_multipath(fo.route_table, members, fo.route_metric)
            except (RouteError, OSError) as exc:
                self.ctx.count("route_error")
                self.log.error("route_change_failed", to=link.name, kind=decision.kind, error=str(exc))
                return None
        switched_at = time.monotonic()
        before = set(self.policy.members)
        self.policy.switched(decision, switched_at)
        if decision.to != decision.previous:
            self.current_since = switched_at
        self.ctx.set_link(self._link_state())
        self.log.info("link_switched" if decision.kind != "select" else "link_selected", kind=decision.kind,
                      previous=decision.previous, to=link.name, members=",".join(decision.members),
                      reason=decision.reason, managed=fo.manage_routes)
        if decision.kind == "select":
            return None
        if decision.kind in ("join", "leave"):
            return Event("balance_changed", {
                "members": list(decision.members), "joined": sorted(set(decision.members) - before),
                "left": sorted(before - set(decision.members)), "primary": link.name, "reason": decision.reason,
                "shares": self.shares(), "route_changed": fo.manage_routes,
                "decided_in_s": round(switched_at - now, 4)}, severity="info")
        previous = self.monitors[decision.previous].judge if decision.previous else None
        data: dict[str, Any] = {
            "from": decision.previous, "to": link.name, "reason": decision.reason, "metered": link.metered,
            "members": list(decision.members),
            "route_changed": fo.manage_routes,
            "decided_in_s": round(switched_at - now, 4),
            "switches_last_hour": self.policy.switches_last_hour(switched_at),
        }
        if decision.kind == "failover" and previous is not None:
            data["previous_down_for_s"] = round(switched_at - previous.since, 2)
        if decision.kind == "failover" and fo.flush_conntrack and decision.previous:
            self._spawn(self._flush(self.links[decision.previous]))
        self._spawn(run_hooks(fo.hooks, decision.kind,
                              {"from": decision.previous or "", "to": link.name, "reason": decision.reason},
                              self.log))
        return Event(decision.kind, data, severity="warning" if decision.kind == "failover" else "info",
                     priority=Priority.ALARM if decision.kind == "failover" else Priority.EVENT)

    async def _flush(self, link: LinkConfig) -> None:
        try:
            deleted = await flush_conntrack(str(link.source))
        except (RouteError, OSError) as exc:
            self.ctx.count("conntrack_error")
            self.log.error("conntrack_flush_failed", link=link.name, error=str(exc))
            return
        self.log.info("conntrack_flushed", link=link.name, deleted=deleted)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _health(self) -> None:
        current = self.policy.current
        if not self.links:
            return
        if self.all_down:
            self.ctx.health("degraded", "all WAN links are down")
        elif current is None:
            self.ctx.health("starting" if any(m.judge.state == "unknown" for m in self.monitors.values())
                            else "degraded", "no WAN link selected yet")
        elif self.monitors[current].judge.state == "down":
            self.ctx.health("degraded", "link in use {link} is down, no healthy alternative", link=current)
        elif self.policy.members[1:]:
            self.ctx.health("ok", "balancing over {members} (agent on {link})", members=", ".join(self.policy.members),
                            link=current)
        else:
            self.ctx.health("ok", "on {link}", link=current)

    # --- data budgets -----------------------------------------------------------------------------

    def _restore_budgets(self) -> None:
        saved = read_json(self.budget_path)
        for name, meter in self.budgets.items():
            meter.restore(saved.get(name) if isinstance(saved, dict) else None)

    async def _save_budgets(self) -> None:
        await self.ctx.write_state(self.budget_path, {n: m.to_json() for n, m in self.budgets.items()})

    async def _budget_loop(self) -> None:
        """Count each metered link's interface bytes; a threshold reached tells the COC and may change what the
        other drivers and the set do."""
        saved_at = time.monotonic()
        boot = boot_id()
        while True:
            counters = _interface_bytes()
            crossings: list[Crossing] = []
            before = {n: m.actions() for n, m in self.budgets.items()}
            for name, meter in self.budgets.items():
                crossings += meter.sample(counters.get(self.links[name].interface), time.time(), boot)
            changed = any(m.actions() != before[n] for n, m in self.budgets.items())
            if crossings or time.monotonic() - saved_at >= BUDGET_SAVE_S:
                saved_at = time.monotonic()
                self._spawn(self._save_budgets())
            if changed:
                self.ctx.set_link(self._link_state())
                self._wake.set()  # leave_set / sparse_probes may change the set or the probe rate
                self.write_state()
            events = [self._budget_event(c) for c in crossings if "notify" in c.threshold.actions]
            for c in crossings:
                self.log.warning("data_budget", link=c.link, period=c.period, pct=c.pct, at_pct=c.threshold.at_pct,
                                 actions=",".join(c.threshold.actions))
            if events:
                await self.ctx.emit(*events)
            await asyncio.sleep(BUDGET_SAMPLE_S)

    def _budget_event(self, c: Crossing) -> Event:
        return Event("data_budget", {
            "link": c.link, "period": c.period, "pct": c.pct, "at_pct": c.threshold.at_pct,
            "used_mb": round(c.used_bytes / MB, 3), "budget_mb": c.budget_bytes / MB,
            "actions": list(c.threshold.actions), "in_use": c.link in self.policy.members},
            severity="warning", priority=Priority.EVENT)

    def shares(self) -> dict[str, float]:
        """Each set member's share of new flows, in percent (weight / sum of the set's weights)."""
        total = sum(self.links[m].weight for m in self.policy.members)
        return {m: round(100.0 * self.links[m].weight / total, 1) for m in self.policy.members} if total else {}

    # --- reporting --------------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        while True:
            slow = self.policy.current is not None and "slow_telemetry" in self._actions(self.policy.current)
            await asyncio.sleep(self.cfg.metered_report_interval_s if slow else self.cfg.report_interval_s)
            now = time.monotonic()
            readings: list[Reading] = []
            for name, meter in self.budgets.items():
                tags = {"link": name}
                readings.append(Reading("link_bytes_day", meter.day_bytes, "B", tags=tags))
                readings.append(Reading("link_bytes_cycle", meter.cycle_bytes, "B", tags=tags))
                readings.append(Reading("link_budget_used_pct", round(meter.used_pct(), 1), "%", tags=tags))
            for name, monitor in self.monitors.items():
                judge = monitor.judge
                for label, target in monitor.targets.items():
                    st = judge.stats(label, now)
                    tags = {"link": name, "target": label, "type": target.type}
                    for key in ("loss_pct", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "jitter_ms"):
                        value = getattr(st, key)
                        if value is not None:
                            unit = "%" if key == "loss_pct" else "ms"
                            readings.append(Reading(f"probe_{key}", round(value, 3), unit, tags=tags))
                if judge.state != "unknown":
                    readings.append(Reading("link_up", int(judge.state == "up"), tags={"link": name}))
                readings.append(Reading("link_in_use", int(self.policy.current == name), tags={"link": name}))
                readings.append(Reading("link_in_set", int(name in self.policy.members), tags={"link": name}))
            self.write_state()
            if readings:
                await self.ctx.emit(*readings)

    def state(self) -> dict[str, Any]:
        """The live state: what `commune-agent links` prints and the `links` command returns."""
        now = time.monotonic()
        links = []
        shares = self.shares()
        for name, monitor in self.monitors.items():
            link, judge = self.links[name], monitor.judge
            targets = []
            for label, target in monitor.targets.items():
                st = judge.stats(label, now)
                targets.append({"target": label, "type": target.type, "state": judge.target_state[label],
                                "sent": st.sent, "loss_pct": _r(st.loss_pct), "rtt_min_ms": _r(st.rtt_min_ms),
                                "rtt_avg_ms": _r(st.rtt_avg_ms), "rtt_max_ms": _r(st.rtt_max_ms),
                                "jitter_ms": _r(st.jitter_ms)})
            links.append({"name": name, "interface": link.interface, "source": str(link.source),
                          "gateway": str(link.gateway) if link.gateway else None, "priority": link.priority,
                          "weight": link.weight, "metered": link.metered, "state": judge.state,
                          "role": link.role, "in_set": name in self.policy.members,
                          "share_pct": shares.get(name, 0.0), "probes": "sparse" if monitor.sparse else "full",
                          "budget": self.budgets[name].doc() if name in self.budgets else None,
                          "since": round(wall(judge.since), 3), "reason": judge.reason,
                          "reason_template": judge.why.template, "reason_params": dict(judge.why.params),
                          "in_use": self.policy.current == name, "targets": targets})
        return {
            "updated": round(time.time(), 3), "pid": os.getpid(), "current": self.policy.current,
            "current_since": round(wall(self.current_since), 3) if self.policy.current else None,
            "mode": "managed" if self.cfg.failover.manage_routes else "observe-only",
            "failover_enabled": self.cfg.failover.enabled,
            "switches_last_hour": self.policy.switches_last_hour(now),
            "failback_damped": self.policy.damped, "links": links,
            "members": list(self.policy.members),
            "policies": policy_rows(self.cfg, {n for n, m in self.monitors.items() if m.judge.state == "up"}),
        }

    def write_state(self) -> None:
        self.ctx.write_state(self.state_path, self.state())


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _can_be_sparse(link: LinkConfig) -> bool:
    return link.role == "standby" or (link.budget is not None and any(
        "sparse_probes" in th.actions for th in link.budget.thresholds))


def _interface_bytes() -> dict[str, int]:
    """rx + tx bytes of every interface of this network namespace (/proc/net/dev)."""
    try:
        return {name: c.bytes_recv + c.bytes_sent for name, c in psutil.net_io_counters(pernic=True).items()}
    except OSError:
        return {}
