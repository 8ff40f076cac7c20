"""The release guard as the unit runs it (/usr/bin/python3 -I, standard library only): it counts a new
release's starts, goes back to the last-known-good one, survives a damaged state.json and ends a trial
whose health gate never passed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support.agentproc import ROOT

GUARD = ["/usr/bin/python3", "-I", str(ROOT / "agent" / "guard.py")]  # as the unit runs it


def _layout(root: Path, *releases: str) -> Path:
    for r in releases:
        (root / r / "bin").mkdir(parents=True)
        (root / r / "bin" / "python").write_text("")
        (root / r / "manifest.json").write_text("{}")
    return root


def _state(root: Path, **kw: object) -> None:
    (root / "state.json").write_text(json.dumps({"good": "a", "trial": None, "last": None, **kw}))


def _pre(root: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*GUARD, "pre", "--releases", str(root)] + (["--config", str(config)] if config else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_a_release_on_trial_gets_max_starts_then_the_good_one_comes_back(tmp_path: Path) -> None:
    root = _layout(tmp_path / "releases", "a", "b")
    _state(root, trial={"release": "b", "change_id": "c1", "from": "a", "starts": 0, "max_starts": 2,
                        "deadline_s": 30, "ok_drivers": [], "started": 0})
    for n in (1, 2):
        assert _pre(root).returncode == 0
        assert os.readlink(root / "current") == "b" and json.loads((root / "state.json").read_text())[
            "trial"]["starts"] == n
    assert _pre(root).returncode == 0
    state = json.loads((root / "state.json").read_text())
    assert os.readlink(root / "current") == "a" == os.readlink(root / "good") and state["trial"] is None
    assert state["last"]["outcome"] == "rolled_back" and state["last"]["reported"] is False
    assert state["last"]["reason"] == "2 starts without passing the health gate"


def test_an_unreadable_state_trusts_the_good_symlink(tmp_path: Path) -> None:
    root = _layout(tmp_path / "releases", "a", "b")
    os.symlink("b", root / "good")
    (root / "state.json").write_bytes(b"\0\0garbage")
    assert _pre(root).returncode == 0
    assert os.readlink(root / "current") == "b" and json.loads((root / "state.json").read_text())["good"] == "b"


def test_a_start_during_a_config_gate_restores_the_good_config(tmp_path: Path) -> None:
    root = _layout(tmp_path / "releases", "a")
    _state(root)
    etc = tmp_path / "etc"
    (etc / "pushed").mkdir(parents=True)
    good = tmp_path / "hist" / "000001-aaaaaaaaaaaa"
    (good / "pushed").mkdir(parents=True)
    (good / "agent.yaml").write_text("good: true\n")
    (good / "pushed" / "pw").write_text("old")
    (etc / "agent.yaml").write_text("good: false\n")
    (etc / "pushed" / "new").write_text("x")
    (etc / "fleet-trial.json").write_text(json.dumps({"change_id": "c9", "good_dir": str(good)}))
    assert _pre(root, etc / "agent.yaml").returncode == 0
    assert (etc / "agent.yaml").read_text() == "good: true\n"
    assert sorted(p.name for p in (etc / "pushed").iterdir()) == ["pw"]
    assert not (etc / "fleet-trial.json").exists()
    assert json.loads((etc / "fleet-outcome.json").read_text())["change_id"] == "c9"


def test_run_ends_a_trial_whose_gate_never_passed(tmp_path: Path) -> None:
    root = _layout(tmp_path / "releases", "a", "b")
    _state(root, trial={"release": "b", "change_id": "c2", "from": "a", "starts": 1, "max_starts": 3,
                        "deadline_s": 1, "ok_drivers": [], "started": 0})
    os.symlink("b", root / "current")
    res = subprocess.run([*GUARD, "run", "--releases", str(root), "--", "/bin/sleep", "30"], capture_output=True,
                         text=True, timeout=20)
    assert res.returncode == 1, res.stderr
    state = json.loads((root / "state.json").read_text())
    assert state["trial"] is None and state["last"]["reason"] == "health gate not passed within 1 s"
    # no trial: the guard becomes the agent itself (exec), its exit code is the agent's
    res = subprocess.run([*GUARD, "run", "--releases", str(root), "--", "/bin/sh", "-c", "exit 75"], timeout=20)
    assert res.returncode == 75
