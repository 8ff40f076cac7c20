"""What a technician installs: the unit's hardening score and the install script's dry behaviour."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess

import pytest

from tests.support.agentproc import ROOT
from tests.support.releases import release_wheels


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_exposure_is_at_most_3() -> None:
    res = subprocess.run(["systemd-analyze", "security", "--offline=true",
                          str(ROOT / "systemd" / "commune-agent.service")], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for commune-agent.service: ([\d.]+)", res.stdout)
    assert m, res.stdout[-2000:] + res.stderr
    assert float(m.group(1)) <= 3.0
    unit = (ROOT / "systemd" / "commune-agent.service").read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=commune-agent", "StateDirectory=",
                   "ConfigurationDirectory=", "CAP_NET_RAW", "CAP_NET_ADMIN", "dialout", "audio", "video"):
        assert needed in unit


def test_unit_verifies() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no",
                          str(ROOT / "systemd" / "commune-agent.service")], capture_output=True, text=True, timeout=60)
    # on a build machine the venv is not under /opt: that is the only complaint allowed
    bad = [line for line in res.stderr.splitlines() if line.strip() and "is not executable" not in line]
    assert not bad, bad


@pytest.mark.slow
def test_install_script_is_idempotent_and_keeps_an_edited_config(tmp_path) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PREFIX": str(tmp_path / "opt"), "ETC_DIR": str(tmp_path / "etc"),
           "STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    wheels = release_wheels(tmp_path / "wheels")  # offline, from the wheels the release tests use
    argv = [str(ROOT / "scripts" / "install.sh"), "--no-systemd", "--skip-apt", "--extras", "", "--wheels", str(wheels)]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    releases = tmp_path / "opt" / "releases"
    one = os.readlink(releases / "current")
    assert os.readlink(releases / "good") == one and json.loads((releases / "state.json").read_text())["good"] == one
    assert json.loads((releases / one / "manifest.json").read_text())["agent_wheel"].startswith("commune_agent-")
    assert (releases / one / "wheels").is_dir() and (tmp_path / "opt" / "guard.py").is_file()
    assert os.readlink(tmp_path / "opt" / "venv") == "releases/current"
    cfg = tmp_path / "etc" / "agent.yaml"
    assert cfg.exists() and "wrote" in first.stdout
    # what a technician finds is valid before any edit (the starter, not the full example)
    agent = str(tmp_path / "opt" / "venv" / "bin" / "commune-agent")
    check = subprocess.run([agent, "check-config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert (tmp_path / "etc" / "agent.example.yaml").read_text() == (ROOT / "config" / "agent.example.yaml").read_text()
    cfg.write_text(cfg.read_text() + "# edited on site\n")
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "keeping existing" in second.stdout and cfg.read_text().endswith("# edited on site\n")
    # a configuration the COC pushes is written by the agent itself: the directory and the file are its own
    agent_uid = pwd.getpwnam("commune-agent").pw_uid
    assert (tmp_path / "etc").stat().st_uid == agent_uid and cfg.stat().st_uid == agent_uid
    two = os.readlink(releases / "current")  # an upgrade: a new release dir, current and good
    assert two != one and os.readlink(releases / "good") == two and (releases / one).is_dir()
    assert not [p for p in releases.iterdir() if p.name.startswith(".tmp-")]
    version = subprocess.run([str(tmp_path / "opt" / "venv" / "bin" / "commune-agent"), "--version"],
                             capture_output=True, text=True)
    assert version.stdout.startswith("commune-agent ")
