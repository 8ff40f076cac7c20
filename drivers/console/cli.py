"""`commune-agent user add|passwd|remove|list`: accounts of the web console."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any, Callable

from drivers.console.accounts import ROLES, AccountError, Accounts
from drivers.console.sessions import SESSIONS_FILE, revoke_on_disk


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("user", help="web console accounts: add, passwd, remove, list")
    sub = p.add_subparsers(dest="user_cmd", required=True)
    a = sub.add_parser("add", help="create an account (asks for the password)")
    a.add_argument("name")
    a.add_argument("--role", required=True, metavar="|".join(ROLES),
                   help="official: bulletins, as-run and reports; technician: all of that and the technical pages")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    a.set_defaults(func=cmd_add)
    pw = sub.add_parser("passwd", help="set a new password")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    pw.set_defaults(func=cmd_passwd)
    r = sub.add_parser("remove", help="delete an account (its sessions end)")
    r.add_argument("name")
    r.set_defaults(func=cmd_remove)
    ls = sub.add_parser("list", help="accounts and their roles")
    ls.set_defaults(func=cmd_list)


def users_path(cfg: Any) -> Path:
    section = getattr(cfg, "console", None)
    if section is not None and section.users_file is not None:
        return Path(section.users_file)
    return Path(cfg.data_dir) / "console" / "users.json"


def sessions_path(cfg: Any) -> Path:
    """The console's sessions file, in its data dir (only hashes of the tokens are in it)."""
    return Path(cfg.data_dir) / "console" / SESSIONS_FILE


def _config(args: argparse.Namespace) -> Any:
    """The config, loaded once per command."""
    from agent.config import load_or_exit

    if getattr(args, "loaded_config", None) is None:
        args.loaded_config = load_or_exit(args.config)
    return args.loaded_config


def _ended(args: argparse.Namespace, name: str) -> str:
    """The user's sessions leave the sessions file now; a running agent refuses them by the account mark anyway."""
    path = sessions_path(_config(args))
    try:
        n = revoke_on_disk(path, name)
    except OSError as exc:
        return f"; {path} not updated ({exc.strerror}), the agent refuses the old sessions all the same"
    return f"; {n} session(s) ended"


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def _change(args: argparse.Namespace, change: Callable[[Accounts], None], done: Callable[[Accounts], str]) -> int:
    """One account change: its error as one line and exit 2, or what was done."""
    acc = Accounts(users_path(_config(args)))
    try:
        change(acc)
    except (AccountError, OSError) as exc:
        print(f"user: {exc}", file=sys.stderr)
        return 2
    print(done(acc))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    return _change(args, lambda acc: acc.add(args.name, args.role, _password(args)),
                   lambda acc: f"added {args.name} ({args.role}) to {acc.path}")


def cmd_passwd(args: argparse.Namespace) -> int:
    return _change(args, lambda acc: acc.passwd(args.name, _password(args)),
                   lambda acc: f"password of {args.name} changed" + _ended(args, args.name))


def cmd_remove(args: argparse.Namespace) -> int:
    return _change(args, lambda acc: acc.remove(args.name),
                   lambda acc: f"removed {args.name}" + _ended(args, args.name))


def cmd_list(args: argparse.Namespace) -> int:
    users = Accounts(users_path(_config(args))).users()
    if not users:
        print("no accounts (add one: commune-agent user add NAME --role official)")
        return 0
    for u in users:
        print(f"{u.name:<24} {u.role:<11} created {time.strftime('%Y-%m-%d', time.localtime(u.created))}")
    return 0
