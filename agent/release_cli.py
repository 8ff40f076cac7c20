"""`commune-agent release adopt|status`: the release layout on the box (install.sh adopts what it built)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.guard import Layout, link_target
from agent.release_install import InstallError, adopt

DEFAULT_RELEASES = Path("/opt/commune-agent/releases")


def cmd_adopt(args: argparse.Namespace) -> int:
    venv = Path(args.venv) if args.venv else Path(sys.prefix)
    try:
        release = adopt(Path(args.releases), venv, args.id)
    except (InstallError, OSError, ValueError) as exc:
        print(f"release adopt: {exc}", file=sys.stderr)
        return 1
    print(f"release {release}: current and good in {args.releases}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.releases))
    state = layout.read_state()
    doc: dict[str, Any] = {"current": link_target(layout.root / "current"), "good": link_target(layout.root / "good"),
                           "state": state}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    trial = (state or {}).get("trial")
    last = (state or {}).get("last")
    print(f"current: {doc['current'] or '-'}  good: {doc['good'] or '-'}")
    if trial:
        print(f"trial: {trial.get('release')} start {trial.get('starts')}/{trial.get('max_starts')} "
              f"change {trial.get('change_id')}")
    if last:
        print(f"last: {last.get('outcome')} {last.get('to', {}).get('release')} {last.get('reason') or ''}".rstrip())
    return 0 if state is not None else 3


def add_commands(sub: Any) -> None:
    p = sub.add_parser("release", help="the release layout of a box installed by install.sh")
    rsub = p.add_subparsers(dest="release_command", metavar="ACTION")
    rsub.required = True
    a = rsub.add_parser("adopt", help="make a freshly built venv (with its wheels/) the current, good release")
    a.add_argument("--releases", default=str(DEFAULT_RELEASES), help="the release dir (fleet.release_dir)")
    a.add_argument("--venv", default=None, help="the venv to adopt (default: the one running this)")
    a.add_argument("--id", default=None, help="release id (default <version>-<UTC time>)")
    a.set_defaults(func=cmd_adopt)
    s = rsub.add_parser("status", help="current, good, a release on trial and the last outcome")
    s.add_argument("--releases", default=str(DEFAULT_RELEASES))
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
