"""The release guard the unit runs before and around every start: it alone points `current` at a release,
counts the unconfirmed starts of a new one and goes back to the last-known-good one — standard library only
(run as /usr/bin/python3 -I), so a broken release cannot break its own rollback."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
CONFIG_TRIAL_FILE = "fleet-trial.json"  # beside agent.yaml while a configuration change is in its health gate
CONFIG_OUTCOME_FILE = "fleet-outcome.json"  # beside agent.yaml: what the guard undid, for the agent to report
PUSHED_DIR = "pushed"
FAILPOINT_ENV = "COMMUNE_AGENT_FAILPOINT"
POLL_S = 1.0
KILL_AFTER_S = 10.0


def log(event: str, **fields: Any) -> None:
    """One line per event, key=value, on stderr (the journal)."""
    parts = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) and (' ' in v or not v) else v}"
                     for k, v in fields.items())
    print(f"guard {event} {parts}".rstrip(), file=sys.stderr, flush=True)


def failpoint(name: str) -> None:
    """A power cut here, when the environment names this point (tests of every step)."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# -- files that survive a power cut ---------------------------------------------------------
def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def set_link(link: Path, target: str) -> None:
    """Point a symlink at a sibling (relative target), replaced atomically: a new link, then a rename."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def link_target(link: Path) -> str | None:
    try:
        return os.readlink(link)
    except OSError:
        return None


# -- the release layout ---------------------------------------------------------------------
class Layout:
    """releases/: one venv per release id, `current` and `good` symlinks, state.json."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def is_release(self, release: Any) -> bool:
        """A complete release dir: renamed into place only once built, so its python and manifest are there."""
        if not isinstance(release, str) or not release or release.startswith(".") or "/" in release:
            return False
        path = self.root / release
        return (path / "bin" / "python").exists() and (path / "manifest.json").is_file()

    def read_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_path.read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.state_path, json.dumps(state, sort_keys=True, indent=1).encode())

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """The state under the layout's lock (guard and agent never interleave a read-modify-write); it is
        written back when the block ends without an exception."""
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = self.read_state() or self.rebuilt_state()
            yield state
            self.write_state(state)
        finally:
            os.close(fd)

    def rebuilt_state(self) -> dict[str, Any]:
        """An unreadable state.json: trust the good symlink (else current, else the newest release)."""
        good = link_target(self.root / "good")
        if not self.is_release(good):
            good = link_target(self.root / "current")
        if not self.is_release(good):
            found = sorted((p for p in self.root.iterdir() if self.is_release(p.name)),
                           key=lambda p: p.stat().st_mtime)
            good = found[-1].name if found else None
        log("state_rebuilt", good=good or "-")
        return {"good": good, "trial": None, "last": None}

    def good(self, state: dict[str, Any]) -> str | None:
        good = state.get("good")
        if self.is_release(good):
            return str(good)
        rebuilt = self.rebuilt_state()["good"]
        state["good"] = rebuilt
        return rebuilt


def roll_back(state: dict[str, Any], reason: str) -> None:
    """End the trial as rolled back: `last` carries the reason for the agent to report."""
    trial = state.get("trial") or {}
    state["trial"] = None
    state["last"] = {"change_id": trial.get("change_id", ""), "kind": "release", "outcome": "rolled_back",
                     "reason": reason, "from": {"release": trial.get("from")},
                     "to": {"release": trial.get("release")}, "ts": round(time.time(), 3), "reported": False}
    log("rolled_back", release=trial.get("release", "-"), reason=reason)


# -- a configuration change interrupted in its gate -------------------------------------------
def recover_config(config: Path) -> None:
    """A start during a configuration change's gate (power cut, crash): the last-known-good configuration
    and its pushed files come back before anything reads them, and the outcome is left for the agent."""
    trial_path = config.parent / CONFIG_TRIAL_FILE
    if not trial_path.exists():
        return
    try:
        trial = json.loads(trial_path.read_bytes())
    except (OSError, ValueError):
        trial = None
    trial = trial if isinstance(trial, dict) else {}
    outcome = {"change_id": trial.get("change_id", ""), "kind": "config", "outcome": "rolled_back",
               "reason": "the agent restarted during the health gate (power cut or crash)",
               "from": trial.get("from"), "to": trial.get("to"), "ts": round(time.time(), 3)}
    good_dir = Path(str(trial.get("good_dir", "")))
    if trial and (good_dir / "agent.yaml").is_file():
        pushed = config.parent / PUSHED_DIR
        pushed.mkdir(mode=0o700, exist_ok=True)
        keep = {p.name: p.read_bytes() for p in sorted((good_dir / PUSHED_DIR).iterdir()) if p.is_file()} \
            if (good_dir / PUSHED_DIR).is_dir() else {}
        for old in pushed.iterdir():
            if old.name not in keep:
                old.unlink()
        for name, blob in keep.items():
            write_atomic(pushed / name, blob, 0o600)
        write_atomic(config, (good_dir / "agent.yaml").read_bytes(), config.stat().st_mode & 0o777)
    else:
        outcome["reason"] += "; the trial record was unreadable, the configuration in place was kept"
    write_atomic(config.parent / CONFIG_OUTCOME_FILE, json.dumps(outcome).encode(), 0o600)
    trial_path.unlink()
    fsync_dir(config.parent)
    log("config_rolled_back", change_id=outcome["change_id"] or "-")


# -- the two commands ---------------------------------------------------------------------------
def pre(releases: Path, config: Path | None) -> int:
    """Before each start: decide which release `current` points at."""
    if config is not None:
        recover_config(config)
    layout = Layout(releases)
    with layout.locked() as state:
        good = layout.good(state)
        target = good
        trial = state.get("trial")
        if isinstance(trial, dict):
            release = trial.get("release")
            starts = int(trial.get("starts", 0)) + 1
            limit = int(trial.get("max_starts", 3))
            if not layout.is_release(release):
                roll_back(state, f"release {release} is not installed")
            elif release == good:
                state["trial"] = None  # its commit was cut short after good moved: nothing left to try
            elif starts > limit:
                roll_back(state, f"{starts - 1} starts without passing the health gate")
            else:
                trial["starts"] = starts
                target = str(release)
                log("trial_start", release=release, start=starts, max_starts=limit)
    failpoint("guard.pre.counted")
    if good is None:
        log("no_release", releases=str(releases))
        return 1
    set_link(releases / "good", good)
    set_link(releases / "current", str(target))
    failpoint("guard.pre.switched")
    log("current", release=target)
    return 0


def run(releases: Path, argv: list[str]) -> int:
    """The agent itself when no release is on trial; else its parent, ending the trial at its deadline."""
    layout = Layout(releases)
    state = layout.read_state() or {}
    trial = state.get("trial")
    current = link_target(releases / "current")
    if not isinstance(trial, dict) or trial.get("release") != current:
        os.execv(argv[0], argv)
    release = str(trial["release"])
    deadline_s = float(trial.get("deadline_s", 120))
    child = subprocess.Popen(argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    deadline = time.monotonic() + deadline_s
    watching = True
    while True:
        try:
            return _exit_code(child.wait(POLL_S if watching else None))
        except subprocess.TimeoutExpired:
            pass
        now = layout.read_state() or {}
        mine = isinstance(now.get("trial"), dict) and now["trial"].get("release") == release
        if not mine:
            watching = False  # committed or rolled back by the agent: it runs on, or exits to be restarted
            continue
        if time.monotonic() < deadline:
            continue
        with layout.locked() as state:
            trial = state.get("trial")
            if not (isinstance(trial, dict) and trial.get("release") == release):
                watching = False
                continue
            roll_back(state, f"health gate not passed within {deadline_s:g} s")
        failpoint("guard.run.rolled_back")
        child.terminate()
        try:
            child.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return 1


def _exit_code(rc: int) -> int:
    """A child killed by a signal is a failure to restart after, as systemd would see it."""
    return 128 - rc if rc < 0 else rc


def install_copy(src: Path, dest: Path) -> bool:
    """Replace the installed guard with src atomically; False when its directory is not writable here."""
    try:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guard.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pre", help="ExecStartPre: point current at the release to start")
    p.add_argument("--releases", type=Path, required=True)
    p.add_argument("--config", type=Path, default=None)
    p = sub.add_parser("run", help="ExecStart: run ARGV, ending a release's trial at its deadline")
    p.add_argument("--releases", type=Path, required=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "pre":
        return pre(args.releases, args.config)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        parser.error("run needs the command after --")
    return run(args.releases, command)


if __name__ == "__main__":
    sys.exit(main())
