"""stop_child ends real child processes: politely when they listen, by force when they do not."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import pytest

from agent.children import stop_child

STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")


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
