"""`commune-agent config history|diff|rollback`: the configuration versions of this box, for a technician."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
import time
from typing import Any

from agent.config import DEFAULT_CONFIG_PATH, load_or_exit
from agent.config_history import ConfigHistory, Version
from agent.remote_config import history_of
from agent.statefile import read_json


def _pick(history: ConfigHistory, n: int | None, default: Version | None) -> Version:
    version = history.get(n) if n is not None else default
    if version is None:
        kept = ", ".join(str(v.n) for v in history.versions()) or "none"
        print(f"config: no version {n if n is not None else ''} on this box (kept: {kept})".replace("  ", " "),
              file=sys.stderr)
        raise SystemExit(2)
    return version


def cmd_history(args: argparse.Namespace) -> int:
    cfg = load_or_exit(args.config)
    history = history_of(cfg)
    good = history.good()
    versions = history.versions()
    if args.json:
        print(json.dumps([dict(v.meta, n=v.n, sha=v.sha, good=good is not None and v.n == good.n)
                          for v in versions], indent=1))
        return 0
    print(f"{'n':>4}  {'sha':12}  {'when':16}  {'origin':8}  {'change':24}  state")
    for v in versions:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(v.meta.get("ts", 0))))
        state = "good" if good is not None and v.n == good.n else (
            "committed" if v.meta.get("committed") else "not committed")
        print(f"{v.n:>4}  {v.sha:12}  {when:16}  {str(v.meta.get('origin', '')):8}  "
              f"{str(v.meta.get('change_id', ''))[:24]:24}  {state}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    cfg = load_or_exit(args.config)
    history = history_of(cfg)
    versions = history.versions()
    newer = _pick(history, args.b, versions[-1] if versions else None)
    older = _pick(history, args.a, next((v for v in reversed(versions) if v.n < newer.n), None))
    lines = difflib.unified_diff(older.config_bytes().decode("utf-8", "replace").splitlines(keepends=True),
                                 newer.config_bytes().decode("utf-8", "replace").splitlines(keepends=True),
                                 f"version {older.n}", f"version {newer.n}")
    sys.stdout.writelines(lines)
    old_files, new_files = older.files(), newer.files()
    for name in sorted(set(old_files) | set(new_files)):
        if old_files.get(name) != new_files.get(name):
            how = "changed" if name in old_files and name in new_files else "added" if name in new_files else "removed"
            print(f"pushed file {name}: {how} (content not shown)")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Put a version back in place and ask the running agent to reload it (it becomes last-known-good)."""
    loaded = load_or_exit(args.config)
    history = history_of(loaded)
    good = history.good()
    default = next((v for v in reversed(history.versions()) if v.meta.get("committed") and good and v.n < good.n),
                   None)
    target = _pick(history, args.n, default)
    path = args.config or DEFAULT_CONFIG_PATH
    history.restore(target, path)
    print(f"config: version {target.n} ({target.sha}) is in place at {path}")
    status: Any = read_json(loaded.data_dir / "status.json")
    pid = status.get("pid") if isinstance(status, dict) and not status.get("stopped") else None
    if isinstance(pid, int):
        try:
            os.kill(pid, signal.SIGHUP)
            print(f"config: asked the running agent (pid {pid}) to reload")
            return 0
        except OSError:
            pass
    print("config: the agent is not running; it reads this version when it starts")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("config", help="configuration versions on this box: history, diff, rollback")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    h = csub.add_parser("history", help="every version kept, which one is last-known-good")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_history)
    d = csub.add_parser("diff", help="what changed between two versions (default: the last two)")
    d.add_argument("a", nargs="?", type=int, default=None)
    d.add_argument("b", nargs="?", type=int, default=None)
    d.set_defaults(func=cmd_diff)
    r = csub.add_parser("rollback", help="put a version back (default: the one before last-known-good) and reload")
    r.add_argument("n", nargs="?", type=int, default=None)
    r.set_defaults(func=cmd_rollback)
