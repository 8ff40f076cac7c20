"""Link-event hooks and the conntrack flush run real programs: an exit code and the environment come through, and a
program still running when the driver stops or its timeout passes is killed with its children."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

import pytest

from agent.logs import KvLogger
from drivers.network.config import Hook
from drivers.network.hooks import run_hook
from drivers.network.routes import RouteError, flush_conntrack
from tests.support.pids import cancel_once_started, pid_in, pid_running
from tests.support.wait import wait_until

LOG = KvLogger("test.hooks")
# writes its pid and the event it was told about, then sleeps: a hook that hangs
SLEEPER = ("import os, sys, time\n"
           "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
           "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
           "time.sleep(60)\n")


def test_a_hook_gets_its_details_and_its_exit_code_comes_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "env"
    code = ("import os, sys; e = os.environ\n"
            "open(sys.argv[1], 'w').write(e['COMMUNE_EVENT'] + ' ' + e['COMMUNE_TO']); sys.exit(4)")
    hook = Hook(argv=[sys.executable, "-c", code, str(out)])
    assert asyncio.run(run_hook(hook, "failover", {"to": "wan2"}, LOG)) == 4
    assert out.read_text() == "failover wan2"
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hook_exit")]
    assert len(said) == 1 and "link_event=failover" in said[0] and "code=4" in said[0]


def test_a_hook_still_running_when_the_driver_stops_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hook = Hook(argv=[sys.executable, "-c", SLEEPER, str(pidfile)], timeout_s=60)

    pid = cancel_once_started(run_hook(hook, "failover", {}, LOG), pidfile, "the hook")
    wait_until(lambda: not pid_running(pid), 5, what=f"hook {pid} killed")


def test_a_hook_past_its_timeout_is_killed_and_gives_none(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hook = Hook(argv=[sys.executable, "-c", SLEEPER, str(pidfile)], timeout_s=1)
    assert asyncio.run(run_hook(hook, "failover", {}, LOG)) is None
    pid = pid_in(pidfile)
    assert pid is not None
    wait_until(lambda: not pid_running(pid), 5, what=f"hook {pid} killed")


@pytest.fixture
def hanging_conntrack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `conntrack` first on PATH that writes its pid and hangs, like the real one on a wedged netlink socket."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "conntrack"
    pidfile = tmp_path / "pid"
    tool.write_text(f"#!/bin/sh\necho $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}\nexec sleep 60\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return pidfile


def test_a_conntrack_flush_cancelled_on_stop_kills_the_tool(hanging_conntrack: Path) -> None:
    pid = cancel_once_started(flush_conntrack("10.0.2.2", timeout=60), hanging_conntrack, "conntrack")
    wait_until(lambda: not pid_running(pid), 5, what=f"conntrack {pid} killed")


def test_a_conntrack_flush_past_its_timeout_is_an_error_and_kills_the_tool(hanging_conntrack: Path) -> None:
    with pytest.raises(RouteError, match="timed out"):
        asyncio.run(flush_conntrack("10.0.2.2", timeout=1))
    pid = pid_in(hanging_conntrack)
    assert pid is not None
    wait_until(lambda: not pid_running(pid), 5, what=f"conntrack {pid} killed")
