"""`commune-agent automations list | status | test RULE --replay FILE`: the rules, their state, a dry run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SECTION = "automations"


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("automations", help="local automation rules: list, status, test on recorded data")
    sub = p.add_subparsers(dest="automations_cmd", required=True)
    ls = sub.add_parser("list", help="the configured rules: trigger, enabled, what they do")
    ls.set_defaults(func=cmd_list)
    st = sub.add_parser("status", help="each rule's last firing, next possible, timers running, pending warnings")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    t = sub.add_parser("test", help="run a recording through one rule in simulated time; prints what would fire")
    t.add_argument("rule")
    t.add_argument("--replay", type=Path, required=True,
                   help="CSV of readings (ts,name,value[,device,source,unit]) or the agent's messages as the COC "
                        "broker saw them (mosquitto_sub -v lines, or JSON lines {topic, payload})")
    t.add_argument("--all", action="store_true", help="also show firings the cooldown, cap or conditions held back")
    t.add_argument("--link", help="the link in use at the start of the recording (for link conditions)")
    t.set_defaults(func=cmd_test)


def _load(args: argparse.Namespace) -> tuple[Any, Any, ZoneInfo]:
    from agent.config import load_section_or_exit

    cfg, section = load_section_or_exit(args.config, SECTION, "automations")
    return cfg, section, ZoneInfo(cfg.site.timezone)


def _fmt(ts: float | None, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def cmd_list(args: argparse.Namespace) -> int:
    _, section, _ = _load(args)
    for r in section.rules:
        acts = ",".join(next(k for k in ("bulletin", "chime", "event", "clip", "hook") if getattr(a, k)) for a in
                        r.actions)
        confirm = f" confirm={r.confirm.timeout_s:g}s/{r.confirm.on_timeout}" if r.confirm else ""
        print(f"{r.id}  {'on ' if r.enabled else 'off'}  trigger={r.trigger.kind}  actions={acts}  "
              f"cooldown={r.cooldown_s:g}s cap={r.daily_cap}/day mode={r.mode}{confirm}  {r.description}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from drivers.automations.api import live_state
    from drivers.automations.rules import Engine
    from drivers.automations.state import State

    cfg, section, tz = _load(args)
    state = State.from_json(live_state(Path(cfg.data_dir)), {r.id for r in section.rules})
    engine = Engine(section.rules, tz, state)
    now = time.time()
    rows = []
    for r in section.rules:
        rs = state.rule(r.id)
        rows.append({"rule": r.id, "enabled": engine.enabled(r), "last_fired": rs.last_fired, "why": rs.last_why,
                     "today": rs.count if rs.day == datetime.fromtimestamp(now, tz).date().isoformat() else 0,
                     "next_possible": engine.next_possible(r, now),
                     "timers": {k: t.since for k, t in rs.timers.items() if not t.fired}})
    pending = [vars(p) for p in state.pending.values()]
    if args.json:
        print(json.dumps({"rules": rows, "pending": pending}, ensure_ascii=False))
        return 0
    for row in rows:
        timers = ", ".join(f"{k} since {_fmt(s, tz)}" for k, s in row["timers"].items()) or "-"
        print(f"{row['rule']}  {'on ' if row['enabled'] else 'off'}  last={_fmt(row['last_fired'], tz)}  "
              f"today={row['today']}  next_possible={_fmt(row['next_possible'], tz) if row['next_possible'] else 'now'}"
              f"  timers={timers}  {row['why']}")
    for p in pending:
        print(f"pending {p['id']}  rule={p['rule']}  deadline={_fmt(p['deadline'], tz)}  then={p['on_timeout']}  "
              f"{p['text']}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from drivers.automations.replay import ReplayError, describe, read_recording, replay

    _, section, tz = _load(args)
    rule = next((r for r in section.rules if r.id == args.rule), None)
    if rule is None:
        print(f"automations: no rule {args.rule!r} (rules: {', '.join(r.id for r in section.rules) or 'none'})",
              file=sys.stderr)
        return 2
    try:
        items = read_recording(args.replay, tz)
    except ReplayError as exc:
        print(f"replay error: {exc}", file=sys.stderr)
        return 2
    firings = replay(rule, items, tz, args.link)
    shown = [f for f in firings if args.all or f.suppressed is None]
    for f in shown:
        print(describe(rule, f, tz))
    fired = sum(1 for f in firings if f.suppressed is None)
    span = f"{_fmt(items[0].ts, tz)} .. {_fmt(items[-1].ts, tz)}" if items else "empty"
    print(f"# {len(items)} items ({span}); {fired} firing(s), {len(firings) - fired} held back")
    return 0
