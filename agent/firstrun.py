"""`commune-agent init`: a valid first config from a few flags or questions, and what to enable next."""

from __future__ import annotations

import argparse
import grp
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, TextIO

import yaml
from pydantic import ValidationError

from agent.config import DEFAULT_CONFIG_PATH, ConfigError, SiteConfig, load, validate
from agent.starter import StarterAnswers, render
from drivers.registry import SPECS

GROUP = "commune-agent"  # the service's group (install.sh): it must be able to read the file
MAX_TRIES = 3


class InitError(Exception):
    """A problem init reports in one line and exits 2 for; nothing has been written."""


def add_init_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", help="write a first config (site, COC broker) from flags or questions")
    p.add_argument("--site-id", help="the commune's administrative code (part of every MQTT topic)")
    p.add_argument("--site-name", help="the commune's name, e.g. \"UBND xã Nghi Ân\"")
    p.add_argument("--coc-host", help="the COC MQTT broker's host name or address")
    p.add_argument("--coc-port", type=int, help="its port (default 8883 with --ca-file, else 1883)")
    p.add_argument("--ca-file", type=Path, help="CA certificate to verify the broker with (turns TLS on)")
    p.add_argument("--username", help="MQTT login name")
    p.add_argument("--password-file", type=Path, help="file holding the MQTT password")
    p.add_argument("--no-input", action="store_true", help="ask nothing: what no flag gives keeps its default")
    p.add_argument("--force", action="store_true", help="replace an existing config file")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.config) if args.config else DEFAULT_CONFIG_PATH
    if target.exists() and not args.force:
        print(f"init: {target} already exists; edit it, or give --force to replace it", file=sys.stderr)
        return 1
    try:
        answers = gather(args, sys.stdin, sys.stdout)
        text = render(answers)
        try:
            validate(yaml.safe_load(text), text)
        except ConfigError as exc:
            raise InitError("; ".join(exc.lines)) from None
        write_config(target, text)
        loaded = load(target)  # what a restart will read, read back
    except (InitError, ConfigError) as exc:
        print(f"init: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target}: config ok sha={loaded.sha}")
    print(next_steps(target, answers))
    return 0


def gather(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> StarterAnswers:
    """Flags first; a missing one is asked for (unless --no-input), re-asked while the answer is invalid."""
    ask = _Asker(stdin, stdout, interactive=not args.no_input)
    a = StarterAnswers()
    site_id = args.site_id or ask("Site id (the commune's administrative code)", None, _site_id)
    site_name = args.site_name if args.site_name is not None else ask("Site name", "", str)
    host = args.coc_host or ask("COC broker host", None, _host)
    ca_file = args.ca_file if args.ca_file is not None else ask(
        "CA certificate file for TLS (empty: plain MQTT)", "", _optional_file)
    port_default = 8883 if ca_file else 1883
    port = args.coc_port if args.coc_port is not None else ask("COC broker port", port_default, _port)
    username = args.username if args.username is not None else ask("MQTT username (empty: none)", "", str)
    password_file = args.password_file
    if password_file is None and username:
        password_file = ask("File holding the MQTT password (empty: none)", "", _optional_file)
    # the agent runs from another directory than init: file names in the config are absolute
    return replace(a, site_id=site_id, site_name=site_name, coc_host=host, coc_port=port,
                   ca_file=Path(ca_file).absolute() if ca_file else None, username=username or None,
                   password_file=Path(password_file).absolute() if password_file else None)


class _Asker:
    """One question on stdout, one answer line from stdin; end of input means "take the default"."""

    def __init__(self, stdin: TextIO, stdout: TextIO, interactive: bool) -> None:
        self.stdin, self.stdout, self.interactive = stdin, stdout, interactive

    def __call__(self, question: str, default: object, parse: Callable[[str], object]) -> object:
        if not self.interactive:
            if default is None:
                raise InitError(f"{question.split(' (')[0].lower()} is needed (see commune-agent init --help)")
            return default
        shown = f" [{default}]" if default not in (None, "") else ""
        for _ in range(MAX_TRIES):
            self.stdout.write(f"{question}{shown}: ")
            self.stdout.flush()
            line = self.stdin.readline()
            if not line:  # end of input
                self.stdout.write("\n")
                if default is None:
                    raise InitError(f"no answer for {question.split(' (')[0].lower()}")
                return default
            answer = line.strip()
            if not answer and default is not None:
                return default
            try:
                return parse(answer)
            except ValueError as exc:
                self.stdout.write(f"  {exc}\n")
        raise InitError(f"no valid answer for {question.split(' (')[0].lower()} after {MAX_TRIES} tries")


def _site_id(value: str) -> str:
    try:
        SiteConfig(site_id=value)
    except ValidationError:
        raise ValueError("letters, digits, - and _ only, at most 64") from None
    return value


def _host(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError("a host name or address, without spaces")
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ValueError("a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise ValueError("a number from 1 to 65535")
    return port


def _optional_file(value: str) -> Path | str:
    if not value:
        return ""
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"not readable: {path}")
    return path


def write_config(target: Path, text: str) -> None:
    """Whole or not at all (temp file + rename), 0640, readable by the service's group when run as root."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InitError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o640)
        if os.geteuid() == 0:
            try:
                os.chown(tmp, 0, grp.getgrnam(GROUP).gr_gid)
            except KeyError:
                pass  # no service group on this box (yet): root-only is the safe side
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise InitError(f"cannot write {target}: {exc.strerror or exc}") from None


def next_steps(target: Path, a: StarterAnswers) -> str:
    families = ", ".join(s.section for s in SPECS if s.section != "host")
    cfg = "" if target == DEFAULT_CONFIG_PATH else f" --config {target}"
    login = "" if a.password_file or a.ca_file or a.username else " (no login configured: add username/password_file)"
    return "\n".join([
        "next:",
        f"  1. check the COC broker from this box: commune-agent doctor{cfg}{login}",
        f"  2. enable what this office has ({families}): uncomment its section in {target};",
        "     every option, commented: agent.example.yaml (next to it after install.sh) and drivers/*/README.md",
        f"  3. commune-agent check-config{cfg}, then: systemctl restart commune-agent",
    ])
