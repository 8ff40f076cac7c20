"""The child helpers on real processes: run_child kills the whole group on cancel and timeout, bounds what it keeps
and leaves no zombie; stop_child ends long-running children politely when they listen, by force when they do not."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.children import ChildTimeout, run_child, run_child_sync, stop_child
from tests.support.pids import pid_running, pid_state
from tests.support.wait import async_wait_until, wait_until

STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
# a child that starts a grandchild, says both pids in a file (atomically) and sleeps
FAMILY = ("import os, subprocess, sys, time\n"
          "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
          "open(sys.argv[1] + '.tmp', 'w').write(f'{os.getpid()} {g.pid}')\n"
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "time.sleep(60)\n")


def _pids(pidfile: Path) -> tuple[int, int] | None:
    if not pidfile.exists():
        return None
    child, grandchild = pidfile.read_text().split()
    return int(child), int(grandchild)


def _assert_family_gone(pids: tuple[int, int]) -> None:
    child, grandchild = pids
    assert pid_state(child) is None, f"child {child} still there (state {pid_state(child)}): killed and reaped"
    # the grandchild's parent reaps it, not us: it must be dead, a zombie at worst for a moment
    wait_until(lambda: not pid_running(grandchild), 5, what=f"grandchild {grandchild} killed")


def test_output_exit_code_and_input() -> None:
    code = "import sys; data = sys.stdin.read(); print(data.upper()); print('said', file=sys.stderr); sys.exit(3)"
    res = asyncio.run(run_child([sys.executable, "-c", code], 10, "xin chào".encode()))
    assert res.code == 3
    assert res.stdout.decode().strip() == "XIN CHÀO"
    assert res.last_words() == "said"


def test_cancel_kills_the_child_and_its_group_and_leaves_no_zombie(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"

    async def main() -> tuple[int, int]:
        task = asyncio.create_task(run_child([sys.executable, "-c", FAMILY, str(pidfile)], 60))
        pids = await async_wait_until(lambda: _pids(pidfile), 10, what="the child's pids")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pids

    _assert_family_gone(asyncio.run(main()))


def test_timeout_kills_the_child_and_its_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"

    async def main() -> float:
        t0 = time.monotonic()
        with pytest.raises(ChildTimeout) as err:
            await run_child([sys.executable, "-c", FAMILY, str(pidfile)], 1.5)
        assert "took longer than 1.5s" in str(err.value) and isinstance(err.value, TimeoutError)
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert took < 10
    pids = _pids(pidfile)
    assert pids is not None, "the child never started"
    _assert_family_gone(pids)


def test_a_grandchild_holding_the_pipes_open_is_ended_by_the_timeout(tmp_path: Path) -> None:
    """The child exits at once but leaves a grandchild with its stderr: the timeout still ends the call and it."""
    pidfile = tmp_path / "pid"
    code = ("import subprocess, sys\n"
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "open(sys.argv[1], 'w').write(str(g.pid))\n")

    async def main() -> None:
        with pytest.raises(ChildTimeout):
            await run_child([sys.executable, "-c", code, str(pidfile)], 1.5, capture_stdout=False)

    asyncio.run(main())
    grandchild = int(pidfile.read_text())
    wait_until(lambda: not pid_running(grandchild), 5, what=f"grandchild {grandchild} killed")


def test_output_is_bounded_head_of_stdout_tail_of_stderr() -> None:
    """8 MiB on each stream: the child is never blocked, stdout keeps its start, stderr its end."""
    code = ("import sys\n"
            "sys.stdout.write('S' + 'o' * (8 << 20)); sys.stdout.flush()\n"
            "sys.stderr.write('e' * (8 << 20) + '\\nthe last line\\n')\n")
    res = asyncio.run(run_child([sys.executable, "-c", code], 30, max_output=1000))
    assert res.code == 0
    assert len(res.stdout) == 1000 and res.stdout.startswith(b"So")
    assert len(res.stderr) == 1000 and res.last_words() == "the last line"


def test_input_the_child_never_reads_is_not_an_error() -> None:
    res = asyncio.run(run_child([sys.executable, "-c", "pass"], 10, b"x" * (4 << 20)))
    assert res.code == 0


def test_a_missing_program_raises_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        asyncio.run(run_child(["/nonexistent/program"], 5))


def test_a_normal_end_leaves_no_zombie() -> None:
    code = "import os; print(os.getpid())"
    res = asyncio.run(run_child([sys.executable, "-c", code], 10))
    assert pid_state(int(res.stdout)) is None


def test_the_thread_variant_times_out_and_kills(tmp_path: Path) -> None:
    """For blocking code in worker threads: the same kill, on a loop of the thread's own."""
    pidfile = tmp_path / "pids"
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run_child_sync([sys.executable, "-c", FAMILY, str(pidfile)], 1.5)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(15)
    assert not t.is_alive() and len(errors) == 1 and isinstance(errors[0], ChildTimeout)
    pids = _pids(pidfile)
    assert pids is not None
    _assert_family_gone(pids)
    assert run_child_sync([sys.executable, "-c", "print('ok')"], 10).stdout == b"ok\n"


async def _spawn(code: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    async with asyncio.timeout(10):
        assert (await proc.stdout.readline()).strip() == b"ready"
    return proc


def test_a_child_that_listens_ends_on_sigterm() -> None:
    async def main() -> int | None:
        proc = await _spawn("import time; print('ready', flush=True); time.sleep(60)")
        await stop_child(proc, grace_s=5)
        return proc.returncode

    assert asyncio.run(main()) == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    async def main() -> tuple[int | None, float]:
        proc = await _spawn(STUBBORN)
        t0 = time.monotonic()
        await stop_child(proc, grace_s=0.5)
        return proc.returncode, time.monotonic() - t0

    code, took = asyncio.run(main())
    assert code == -signal.SIGKILL
    assert took >= 0.5


def test_cancelled_while_waiting_the_child_is_still_killed() -> None:
    async def main() -> int | None:
        proc = await _spawn(STUBBORN)
        task = asyncio.create_task(stop_child(proc, grace_s=30))
        await asyncio.sleep(0)  # one turn: the task sends SIGTERM and suspends in its wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(10):
            await proc.wait()
        return proc.returncode

    assert asyncio.run(main()) == -signal.SIGKILL


def test_an_ended_child_is_left_alone() -> None:
    async def main() -> int | None:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await proc.wait()
        await stop_child(proc)
        return proc.returncode

    assert asyncio.run(main()) == 0

