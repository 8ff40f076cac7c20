"""commune-agent run | check-config | schema | doctor | status | init, plus each driver family's commands."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent import __version__, config_cli, release_cli
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, ConfigError, load, load_or_exit
from agent.firstrun import add_init_command
from agent.fleet.cli import add_commands as add_fleet_commands
from drivers.registry import SPECS


def cmd_run(args: argparse.Namespace) -> int:
    try:
        loaded = load(args.config)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2
    from agent.supervisor import run_agent

    return run_agent(loaded)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.file or args.config
    try:
        loaded = load(path)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2
    enabled = [s.section for s in SPECS if getattr(loaded.config, s.section, None) is not None]
    print(f"config ok: {loaded.path} sha={loaded.sha} sections={','.join(enabled)}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.topics is not None:
        from agent.topics import write_schemas

        for path in write_schemas(args.topics):
            print(path)
        return 0
    if args.commands:
        from agent.command_args import json_schemas

        print(json.dumps(json_schemas(), indent=2, ensure_ascii=False))
        return 0
    print(json.dumps(AgentConfig.model_json_schema(), indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_or_exit(args.config)
    path = cfg.data_dir / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"status: no status at {path} ({exc}); is the agent running?", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    if status.get("stopped"):
        print("agent: stopped")
        return 3
    age = time.time() - status.get("ts", 0)
    up = status.get("uplink", {})
    sp = status.get("spool", {})
    link = status.get("link", {})
    print(f"agent: pid={status.get('pid')} boot_id={status.get('boot_id')} status_age={age:.0f}s")
    print(f"uplink: {up.get('state')} {up.get('detail') or ''} published={up.get('published')}")
    print(f"spool: depth={sp.get('spool_depth')} bytes={sp.get('spool_bytes')} dropped={sp.get('spool_dropped')}")
    print(f"link: {link.get('name') or '-'} metered={link.get('metered')}")
    for name, d in status.get("drivers", {}).items():
        print(f"driver {name}: {d.get('state')} {d.get('detail') or ''} restarts={d.get('restarts')}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Checks a technician can run on site: config, disk, spool, broker reachability and login."""
    from agent.doctor import run_checks

    try:
        loaded = load(args.config)
    except ConfigError as exc:
        print(f"FAIL config {exc.lines[0]}")
        for line in exc.lines[1:]:
            print(f"FAIL config {line}")
        return 2
    results = run_checks(loaded.config)
    for level, name, detail in results:
        print(f"{level:4} {name:10} {detail}")
    return 1 if any(level == "FAIL" for level, _, _ in results) else 0


CONFIG_HELP = f"config file (default {DEFAULT_CONFIG_PATH})"


def _accept_config_after_command(parser: argparse.ArgumentParser) -> None:
    """`commune-agent CMD --config FILE` as well as `commune-agent --config FILE CMD`, at every depth.

    The option on a subcommand has no default of its own, so it only overrides when it is given.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for sub in {id(p): p for p in action.choices.values()}.values():
            taken = sub._option_string_actions
            if "--config" not in taken:
                flags = ["--config"] + (["-c"] if "-c" not in taken else [])
                sub.add_argument(*flags, dest="config", default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
            _accept_config_after_command(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commune-agent", description=__doc__)
    parser.add_argument("--config", "-c", default=None, metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"commune-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("run", help="run the agent (what systemd starts)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check-config", help="validate a config file; exit 2 with key paths and lines on errors")
    p.add_argument("file", nargs="?", default=None)
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("schema", help="print the config's JSON Schema (--commands: each COC command's; "
                                      "--topics DIR: each MQTT topic's)")
    p.add_argument("--commands", action="store_true", help="a JSON Schema per COC command, by name")
    p.add_argument("--topics", type=Path, metavar="DIR", help="write a JSON Schema per MQTT topic into DIR "
                                                               "(the repository keeps them in schemas/topics)")
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser("doctor", help="check config, disk, spool and the COC broker from this box")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("status", help="print the running agent's health")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    add_init_command(sub)
    add_fleet_commands(sub)
    config_cli.add_commands(sub)
    release_cli.add_commands(sub)
    for spec in SPECS:
        if spec.cli is None:
            continue
        try:
            module: Any = importlib.import_module(spec.cli)
        except ModuleNotFoundError:
            continue  # that family's extra is not installed on this box
        module.add_commands(sub)
    _accept_config_after_command(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if isinstance(args.config, str):
        args.config = Path(args.config)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
