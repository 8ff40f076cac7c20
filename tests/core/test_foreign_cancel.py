"""A CancelledError that the supervisor did not ask for (a library cancelling its own task, the error escaping
run()) is a crash: restarted with backoff and shown in health; the supervisor's own stop never restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from agent.config import load
from agent.driver import Context
from agent.supervisor import CoreTask, SupervisedDriver, Supervisor
from drivers.registry import DriverSpec
from tests.support.agentproc import write_config
from tests.support.wait import async_wait_until

SPEC = DriverSpec("victim", "agent.host:HostConfig", f"{__name__}:ForeignCancelDriver")
STUBBORN = DriverSpec("stubborn", "agent.host:HostConfig", f"{__name__}:StubbornDriver")


async def escape_a_foreign_cancel() -> None:
    """What a library does when it cancels a task of its own and lets the CancelledError out."""
    inner = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    inner.cancel()
    await inner


class ForeignCancelDriver:
    """Its first run ends with a foreign CancelledError; later runs are healthy (runs counted in a file)."""

    async def run(self, ctx: Context) -> None:
        runs = ctx.data_dir / "runs"
        n = len(runs.read_text()) if runs.exists() else 0
        runs.write_text("x" * (n + 1))
        ctx.health("ok")
        if n == 0:
            await escape_a_foreign_cancel()
        await asyncio.Event().wait()


class StubbornDriver:
    """Turns the supervisor's cancel into an error of its own while cleaning up."""

    async def run(self, ctx: Context) -> None:
        runs = ctx.data_dir / "runs"
        runs.write_text((runs.read_text() if runs.exists() else "") + "x")
        ctx.health("ok")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None


def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor(load(write_config(tmp_path / "agent.yaml", 1, tmp_path / "data", None)))


def test_a_driver_ended_by_a_foreign_cancel_is_restarted_and_health_shows_it(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)

    async def scenario() -> None:
        supervised = SupervisedDriver(sup, SPEC, sup.config.host)
        sup.drivers["victim"] = supervised
        supervised.start()
        try:
            await async_wait_until(lambda: supervised.restarts == 1, 5, what="the foreign cancel counted as a crash")
            doc = sup.health_payload()["drivers"]["victim"]
            assert doc["state"] == "failed" and doc["last_error"].startswith("CancelledError"), doc
            await async_wait_until(lambda: supervised.state == "ok", 5, what="restarted after its backoff")
            assert (tmp_path / "data" / "victim" / "runs").read_text() == "xx"
            assert sup.driver_instances() == {"victim": 1}
        finally:
            assert await supervised.stop(1) is None
        assert supervised.restarts == 1  # the supervisor's own stop is not a crash

    asyncio.run(scenario())


def test_the_supervisors_stop_never_restarts_a_driver_whatever_it_raises(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)

    async def scenario() -> None:
        supervised = SupervisedDriver(sup, STUBBORN, sup.config.host)
        supervised.start()
        await async_wait_until(lambda: supervised.state == "ok", 5, what="driver running")
        task = supervised.task
        started = time.monotonic()
        assert await supervised.stop(2) is None  # ended, not lingering in a restart's backoff
        assert time.monotonic() - started < 1
        # the restart loop lives in that task: once it is done, nothing can start the driver again
        assert task is not None and task.done() and supervised.restarts == 0
        assert (tmp_path / "data" / "stubborn" / "runs").read_text() == "x"

    # not asyncio.run: its final cancel of leftover tasks would spin forever on a driver that a stop restarts
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_a_core_task_ended_by_a_foreign_cancel_is_restarted_and_reported(tmp_path: Path) -> None:
    runs: list[float] = []
    changes: list[str] = []

    async def work() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            await escape_a_foreign_cancel()
        await asyncio.Event().wait()

    async def scenario() -> None:
        task = CoreTask("uplink", work, lambda: changes.append(task.state))
        task.start()
        try:
            await async_wait_until(lambda: task.restarts == 1, 5, what="the foreign cancel counted as a crash")
            assert task.state_doc()["state"] == "failed" and not task.alive
            assert (task.last_error or "").startswith("CancelledError")
            await async_wait_until(lambda: len(runs) == 2 and task.alive, 5, what="restarted")
            assert runs[1] - runs[0] >= 0.9  # after its backoff, not at once
            assert changes[:3] == ["running", "failed", "running"]
        finally:
            inner = task.task
            await task.stop(1)
        assert inner is not None and inner.done() and task.restarts == 1

    asyncio.run(scenario())


def test_a_foreign_cancel_while_a_core_task_is_stopping_ends_it(tmp_path: Path) -> None:
    """uplink.stop() may end the uplink's run() with a CancelledError of its own: that is the stop, not a crash."""
    gone: dict[str, Any] = {}

    async def work() -> None:
        await gone.setdefault("event", asyncio.Event()).wait()
        await escape_a_foreign_cancel()

    async def scenario() -> None:
        task = CoreTask("uplink", work, lambda: None).start()
        await async_wait_until(lambda: "event" in gone, 5, what="running")
        inner = task.task
        task.stopping = True
        gone["event"].set()
        assert inner is not None
        await asyncio.wait({inner}, timeout=5)
        assert inner.done() and not inner.cancelled() and task.state == "stopped" and task.restarts == 0

    asyncio.run(scenario())
