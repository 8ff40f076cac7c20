"""`commune-agent links`: the live WAN link state, read from the state file the driver keeps."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from agent.statefile import read_json
from drivers.network.statefile import state_path_of

STALE_S = 30.0  # the driver rewrites the file every report_interval_s and on every change


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("links", help="show the WAN links: state, loss, RTT, the balance set and its shares, "
                                             "data budgets and policies")
    p.add_argument("--json", action="store_true", help="print the raw state as JSON")
    p.set_defaults(func=links_command)


def links_command(args: argparse.Namespace) -> int:
    from agent.config import load_or_exit

    cfg = load_or_exit(args.config)
    section = getattr(cfg, "network", None)
    if section is None:
        print("links: the config has no network section", file=sys.stderr)
        return 2
    path = state_path_of(section, cfg.data_dir / "network")
    state = read_json(path)
    if not isinstance(state, dict):
        print(f"links: no link state in {path} (is the agent running with the network driver?)", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(state, indent=1, sort_keys=True))
    else:
        print(render(state, time.time()))
    return 0


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ago(ts: Any, now: float) -> str:
    if not ts:
        return "-"
    s = max(0, int(now - float(ts)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render(state: dict[str, Any], now: float) -> str:
    """A technician-readable table of links and their targets."""
    lines = []
    age = now - float(state.get("updated", 0))
    current = state.get("current") or "(none)"
    lines.append(f"in use: {current} for {_ago(state.get('current_since'), now)}   mode: {state.get('mode')}   "
                 f"switches last hour: {state.get('switches_last_hour', 0)}"
                 + ("   failback held back by flap damping" if state.get("failback_damped") else ""))
    if age > STALE_S:
        lines.append(f"WARNING: state is {age:.0f}s old: the agent may not be running")
    shares = {x["name"]: x.get("share_pct", 0.0) for x in state.get("links", [])}
    members = state.get("members") or []
    lines.append("balance set: " + (", ".join(f"{m} {shares.get(m, 0):.0f}%" for m in members) or "(none)"))
    lines.append(f"{'':2}{'LINK':<10}{'STATE':<8}{'FOR':<9}{'IFACE':<10}{'PRIO':<5}{'ROLE':<8}{'PROBES':<7}"
                 f"{'METERED':<8}REASON")
    for link in state.get("links", []):
        mark = "*" if link.get("in_use") else ("+" if link.get("in_set") else " ")
        lines.append(f"{mark} {link['name']:<10}{link['state']:<8}{_ago(link.get('since'), now):<9}"
                     f"{link['interface']:<10}{link['priority']:<5}{link.get('role', 'balance'):<8}"
                     f"{link.get('probes', 'full'):<7}{'yes' if link.get('metered') else 'no':<8}"
                     f"{link.get('reason', '')}")
        for t in link.get("targets", []):
            loss = "-" if t.get("loss_pct") is None else f"{t['loss_pct']:.0f}%"
            rtt = "/".join(_ms(t.get(k)) for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms"))
            lines.append(f"    {t['target']:<28}{t['state']:<8}loss {loss:<5} rtt {rtt} ms  "
                         f"jitter {_ms(t.get('jitter_ms'))} ms")
    budgets = [(x["name"], x["budget"]) for x in state.get("links", []) if x.get("budget")]
    if budgets:
        lines.append("data budgets:")
    for name, b in budgets:
        actions = " → " + ", ".join(b["actions"]) if b.get("actions") else ""
        for period in ("daily", "monthly"):
            if period in b:
                u = b[period]
                since = f" since {b.get('cycle_start')}" if period == "monthly" else ""
                lines.append(f"  {name} {period} {u['used_mb']:.1f}/{u['budget_mb']:g} MB ({u['pct']:.0f}%)"
                             f"{since}{actions}")
    if state.get("policies"):
        lines.append("policies:")
    for p in state.get("policies", []):
        lines.append(f"  {p['name']}  {p['action']} {p['link']}  {p['match']}  {p['state']}")
    return "\n".join(lines)
