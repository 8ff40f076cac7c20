"""Ending the driver tasks tests start."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait until it has finished cleaning up."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
