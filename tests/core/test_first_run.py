"""First run as a new technician meets it: the starter config, `init`, and --config on either side of the command."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.cli import build_parser
from drivers.registry import SPECS
from tests.support.agentproc import ROOT
from tests.support.tmpfs import mounted_tmpfs

STARTER = ROOT / "config" / "agent.starter.yaml"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, input=stdin if stdin is not None else "")


def _leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command path, the drivers' own included: ("run",), ("sensors", "decode"), ..."""
    out: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.extend(_leaf_commands(sub, (*prefix, name)))
    return out or [prefix]


def _required_args(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[str]:
    """Filler values for a command's required positionals and options, so it parses."""
    sub = parser
    for name in path:
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    extra: list[str] = []
    for a in sub._actions:
        if not a.option_strings and a.nargs not in ("?", "*", argparse.SUPPRESS) and a.dest != "help":
            extra.append("x")
        elif a.option_strings and a.required:
            extra += [a.option_strings[0], "x"]
    for group in sub._mutually_exclusive_groups:
        if group.required:
            extra += [group._group_actions[0].option_strings[0], "x"]
    return extra


PARSER = build_parser()
COMMANDS = _leaf_commands(PARSER)


def test_the_walk_sees_the_driver_commands() -> None:
    names = {c[0] for c in COMMANDS}
    assert {"run", "check-config", "schema", "doctor", "status", "init"} <= names
    assert "links" in names and ("sensors", "decode") in COMMANDS  # added through drivers/registry.py


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_config_option_on_either_side_of_the_command(command: tuple[str, ...]) -> None:
    extra = _required_args(PARSER, command)
    before = PARSER.parse_args(["--config", "/etc/a.yaml", *command, *extra])
    after = PARSER.parse_args([*command, *extra, "--config", "/etc/a.yaml"])
    short = PARSER.parse_args([*command, *extra, "-c", "/etc/a.yaml"])
    assert before.config == after.config == short.config == "/etc/a.yaml"
    assert PARSER.parse_args([*command, *extra]).config is None
    # given on both sides, the one nearer the command's own options wins (as in git, systemctl)
    assert PARSER.parse_args(["-c", "/etc/b.yaml", *command, *extra, "-c", "/etc/a.yaml"]).config == "/etc/a.yaml"
    assert PARSER.parse_args(["-c", "/etc/b.yaml", *command, *extra]).config == "/etc/b.yaml"


def test_option_after_the_command_reaches_the_command(tmp_path: Path) -> None:
    """Not only parsed: `status --config FILE` reads that file's data_dir."""
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f'site: {{site_id: "t1"}}\ncoc: {{host: 127.0.0.1}}\ndata_dir: {tmp_path / "data"}\n')
    res = cli("status", "--config", str(cfg))
    assert res.returncode == 3 and str(tmp_path / "data" / "status.json") in res.stderr
    res = cli("check-config", "--config", str(cfg))
    assert res.returncode == 0 and f"config ok: {cfg}" in res.stdout
    res = cli("run", "--config", str(tmp_path / "absent.yaml"))
    assert res.returncode == 2 and f"{tmp_path / 'absent.yaml'}: cannot read" in res.stderr


def test_starter_config_passes_check_config_as_written() -> None:
    res = cli("check-config", str(STARTER))
    assert res.returncode == 0, res.stderr
    assert "sections=host" in res.stdout


def test_starter_has_site_coc_host_and_every_family_commented() -> None:
    text = STARTER.read_text()
    assert set(yaml.safe_load(text)) == {"site", "coc", "host"}
    for spec in SPECS:
        if spec.section != "host":
            assert f"\n# {spec.section}:\n" in text, f"{spec.section} missing from the starter"


def _init(target: Path, *flags: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return cli("init", "--config", str(target), *flags, stdin=stdin)


def test_init_from_flags_writes_a_valid_private_config(tmp_path: Path) -> None:
    pw = tmp_path / "coc.password"
    pw.write_text("s3cret\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    target = tmp_path / "etc" / "agent.yaml"
    res = _init(target, "--site-id", "18241", "--site-name", "UBND xã Nghi Ân", "--coc-host", "coc.example.vn",
                "--ca-file", str(ca), "--username", "agent-18241", "--password-file", str(pw), "--no-input")
    assert res.returncode == 0, res.stderr
    assert f"wrote {target}: config ok" in res.stdout
    assert "next:" in res.stdout and "doctor" in res.stdout
    for spec in SPECS:
        if spec.section != "host":
            assert spec.section in res.stdout  # says what there is to enable
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    data = yaml.safe_load(target.read_text())
    assert data["site"] == {"site_id": "18241", "name": "UBND xã Nghi Ân"}
    assert data["coc"] == {"host": "coc.example.vn", "port": 8883, "tls": {"ca_file": str(ca)},
                           "username": "agent-18241", "password_file": str(pw)}
    assert "s3cret" not in target.read_text()
    assert cli("check-config", str(target)).returncode == 0
    assert [p.name for p in target.parent.iterdir()] == ["agent.yaml"]  # no temp file left


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    target.write_text("site: {site_id: old}\n")
    args = ("--site-id", "new", "--coc-host", "h", "--no-input")
    res = _init(target, *args)
    assert res.returncode == 1 and "already exists" in res.stderr and "--force" in res.stderr
    assert target.read_text() == "site: {site_id: old}\n"
    res = _init(target, *args, "--force")
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(target.read_text())["site"]["site_id"] == "new"


@pytest.mark.parametrize("flags, message", [
    (("--site-id", "18 241", "--coc-host", "h"), "site.site_id"),
    (("--site-id", "1", "--coc-host", "h", "--coc-port", "70000"), "coc.port"),
    (("--site-id", "1", "--coc-host", "h", "--username", "u", "--password-file", "/nonexistent/pw"),
     "coc.password_file: file not found"),
    (("--site-id", "1", "--coc-host", "h", "--password-file", "{pw}"), "password_file needs username"),
    (("--coc-host", "h"), "site id is needed"),
])
def test_init_with_bad_flags_writes_nothing(tmp_path: Path, flags: tuple[str, ...], message: str) -> None:
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    target = tmp_path / "etc" / "agent.yaml"
    res = _init(target, *(f.format(pw=pw) for f in flags), "--no-input")
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and res.stderr.startswith("init: ") and "Traceback" not in res.stderr
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_init_asks_for_what_no_flag_gave(tmp_path: Path) -> None:
    pw = tmp_path / "coc.password"
    pw.write_text("x\n")
    target = tmp_path / "agent.yaml"
    answers = "\n".join([
        "18 241",            # site id: refused (space), asked again
        "18241",
        "Xã Phúc Sơn",       # site name
        "",                  # host: empty is not an answer, asked again
        "10.0.0.5",
        "",                  # no CA file: plain MQTT
        "",                  # port: the default
        "agent-18241",       # username
        str(tmp_path / "typo"),  # password file that does not exist: asked again
        str(pw),
    ]) + "\n"
    res = _init(target, stdin=answers)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("Site id") == 2 and "letters, digits" in res.stdout
    assert res.stdout.count("COC broker host") == 2
    assert "COC broker port [1883]" in res.stdout and f"no such file: {tmp_path / 'typo'}" in res.stdout
    data = yaml.safe_load(target.read_text())
    assert data["site"] == {"site_id": "18241", "name": "Xã Phúc Sơn"}
    assert data["coc"] == {"host": "10.0.0.5", "port": 1883, "username": "agent-18241", "password_file": str(pw)}


def test_init_flags_and_questions_mix_and_end_of_input_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    res = _init(target, "--site-id", "x1", "--site-name", "", "--username", "", stdin="coc.local\n\n1884\n")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Site id" not in res.stdout and "MQTT username" not in res.stdout
    assert yaml.safe_load(target.read_text())["coc"] == {"host": "coc.local", "port": 1884}
    other = tmp_path / "other.yaml"
    res = _init(other, stdin="")
    assert res.returncode == 2 and "init: no answer for site id" in res.stderr
    assert not other.exists()


def test_init_writes_file_names_absolute(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    res = subprocess.run([sys.executable, "-m", "agent.cli", "init", "-c", "agent.yaml", "--site-id", "1",
                          "--coc-host", "h", "--username", "u", "--password-file", "pw", "--no-input"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load((tmp_path / "agent.yaml").read_text())["coc"]["password_file"] == str(tmp_path / "pw")


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only mount needs root")
def test_init_on_a_read_only_dir_says_so(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "ro", "1m", "ro") as mnt:
        res = _init(mnt / "agent.yaml", "--site-id", "1", "--coc-host", "h", "--no-input")
        assert res.returncode == 2 and "cannot write" in res.stderr and "Read-only file system" in res.stderr
