"""What /proc says about a process: whether a child a test started (or had started) is still there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Coroutine

import pytest

from tests.support.wait import async_wait_until


def pid_state(pid: int) -> str | None:
    """The process's state letter from /proc (Z for a zombie), None once it is gone altogether."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_running(pid: int) -> bool:
    """True while the process runs (a zombie has ended: it only waits for its parent to reap it)."""
    return pid_state(pid) not in (None, "Z")


def pid_in(path: Path) -> int | None:
    """The pid a child wrote into path, None until it has."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def cancel_once_started(work: Coroutine[Any, Any, Any], pidfile: Path, what: str) -> int:
    """Run `work` until the child it starts writes its pid, cancel it there, and return that pid: what a
    driver stopping mid-command does to the command's child."""

    async def main() -> int:
        task = asyncio.create_task(work)
        pid = await async_wait_until(lambda: pid_in(pidfile), 10, what=f"{what}'s pid")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    return asyncio.run(main())
