"""`commune-agent signboard urls | status`: the screen boards' addresses (for setting up a screen) and their state."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SECTION = "signboard"


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("signboard", help="public signboards: the screens' addresses, the boards' state")
    sub = p.add_subparsers(dest="signboard_cmd", required=True)
    u = sub.add_parser("urls", help="each screen board's page address (holds its secret: technicians only)")
    u.add_argument("--host", help="the box's LAN address as the screens reach it (default: the listen address)")
    u.set_defaults(func=cmd_urls)
    st = sub.add_parser("status", help="notices, schedule lines and each board's state as last saved")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)


def cmd_urls(args: argparse.Namespace) -> int:
    from agent.config import load_section_or_exit
    from drivers.signboard.api import board_urls

    cfg, section = load_section_or_exit(args.config, SECTION, "signboard")
    host = args.host or (section.listen if section.listen not in ("0.0.0.0", "::") else "127.0.0.1")
    urls = board_urls(Path(cfg.data_dir), host, section.port)
    for name in section.boards:
        if name in urls:
            print(f"{name}  {urls[name]}")
    if not urls:
        print("no screen board has an address yet: the agent makes them when it first starts the signboard section")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from agent.config import load_section_or_exit
    from drivers.signboard.api import live_state

    cfg, _ = load_section_or_exit(args.config, SECTION, "signboard")
    doc = live_state(Path(cfg.data_dir)) or {}
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    for name, b in (doc.get("boards") or {}).items():
        print(f"{name}  {b.get('type')}  {b.get('state')}  {b.get('error') or ''}".rstrip())
    for n in doc.get("notices") or []:
        print(f"notice {n.get('id')}  boards={','.join(n.get('boards') or ['all'])}  {n.get('title') or ''} "
              f"{n.get('text', '')[:80]}")
    print(f"schedule: {len(doc.get('schedule') or [])} lines, by {doc.get('schedule_by') or '-'}")
    return 0
