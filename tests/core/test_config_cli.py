"""Bad config files exit 2 with `config error: <key.path>: <reason> (line N)` and never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agentproc import ROOT

LINE = re.compile(r"^config error: [^:]+: .+( \(line \d+\))?$")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


GOOD = """\
site:
  site_id: "18241"
coc:
  host: 127.0.0.1
data_dir: {tmp}/data
"""

CASES = {
    "unknown_key": (GOOD + "spool:\n  max_bytez: 10MiB\n",
                    "spool.max_bytez: unknown key (did you mean 'max_bytes'?) (line 7)"),
    "wrong_type": (GOOD.replace("host: 127.0.0.1", "host: 127.0.0.1\n  port: eighty"), "coc.port:"),
    "out_of_range": (GOOD.replace("host: 127.0.0.1", "host: 127.0.0.1\n  port: 70000"), "coc.port:"),
    "missing_required": ("site:\n  name: x\ncoc:\n  host: h\n", "site.site_id: required key is missing (line 1)"),
    "secret_inline": (GOOD.replace("host: 127.0.0.1", "host: 127.0.0.1\n  username: a\n  password: hunter2"),
                      "coc.password: unknown key (secrets are read from files: use password_file) (line 6)"),
    "secret_file_missing": (GOOD.replace("host: 127.0.0.1", "host: 127.0.0.1\n  username: a\n"
                                         "  password_file: /nonexistent/pw"), "coc.password_file: file not found"),
    "bad_timezone": (GOOD.replace('site_id: "18241"', 'site_id: "18241"\n  timezone: Mars/Olympus'),
                     "site.timezone: unknown time zone 'Mars/Olympus' (line 3)"),
    "yaml_syntax": ("site: [unclosed\n", "config error: <yaml>:"),
    "not_a_mapping": ("- a\n- b\n", "config error: <top>: the file must be a mapping"),
    "bad_site_id": (GOOD.replace('"18241"', '"a/b#"'), "site.site_id:"),
    "old_and_new_section_name": (GOOD + "health:\n  interval_s: 5\nhost:\n  interval_s: 5\n",
                                 "health: the old name of host, and host is given too: keep host only (line 6)"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_config_exits_2_with_key_path_and_line(tmp_path: Path, name: str) -> None:
    text, expected = CASES[name]
    path = tmp_path / "agent.yaml"
    path.write_text(text.format(tmp=tmp_path))
    res = cli("check-config", str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    assert any(expected in line for line in lines), lines


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("site:\n  site_id: x\n  colour: red\ncoc:\n  host: h\n  port: -1\nextra: 1\n")
    res = cli("check-config", str(path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert {"site.colour", "coc.port", "extra"} <= {line.split(": ")[1] for line in lines}
    assert any("(line 3)" in line for line in lines) and any("(line 7)" in line for line in lines)


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    res = cli("check-config", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2 and "cannot read" in res.stderr and "Traceback" not in res.stderr
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    res = cli("check-config", str(binary))
    assert res.returncode == 2 and "not UTF-8" in res.stderr


def test_good_config_and_run_refuses_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD.format(tmp=tmp_path))
    res = cli("check-config", str(path))
    assert res.returncode == 0 and "config ok" in res.stdout
    path.write_text(GOOD.format(tmp=tmp_path) + "bogus: 1\n")
    res = cli("--config", str(path), "run")
    assert res.returncode == 2 and "bogus: unknown key" in res.stderr and "Traceback" not in res.stderr


def test_schema_is_json_schema_with_every_section() -> None:
    res = cli("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert {"site", "coc", "spool", "logging", "host", "data_dir"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_example_config_is_valid_and_documents_every_option(tmp_path: Path) -> None:
    """The shipped example validates once its secret files exist, and names every core option."""
    text = (ROOT / "config" / "agent.example.yaml").read_text()
    secrets = sorted(set(re.findall(r"(/etc/commune-agent/[\w./-]+)", text)))
    for s in secrets:
        target = tmp_path / s.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("secret-of-sixteen-or-more\n")
        text = text.replace(s, str(target))
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    res = cli("check-config", str(path))
    assert res.returncode == 0, res.stderr
    from agent.config import CocConfig, LoggingConfig, SiteConfig, SpoolConfig
    from agent.host import HostConfig

    for model in (SiteConfig, CocConfig, SpoolConfig, LoggingConfig, HostConfig):
        for field in model.model_fields:
            assert re.search(rf"^\s*#?\s*{field}:", text, re.M), f"{model.__name__}.{field} not in example"


def test_the_old_host_section_name_loads_with_one_warning(tmp_path: Path) -> None:
    """`health:` is what host metrics were called before: a file written then still runs, and says what to rename."""
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD.format(tmp=tmp_path) + "health:\n  interval_s: 5\n")
    res = cli("check-config", str(path))
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == ["config warning: health: renamed host; read as host for now, rename the "
                                       "section (line 6)"]
    assert "sections=host" in res.stdout
    from agent.config import load

    assert load(path).config.host.interval_s == 5


def test_a_bad_key_under_the_old_name_is_named_as_written(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD.format(tmp=tmp_path) + "health:\n  interval_z: 5\n")
    res = cli("check-config", str(path))
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "config warning: health: renamed host; read as host for now, rename the section (line 6)",
        "config error: health.interval_z: unknown key (did you mean 'interval_s'?) (line 7)"]
