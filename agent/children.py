"""Ending child processes (camera workers, ffmpeg recorders) so that none is ever left behind."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_child(proc: asyncio.subprocess.Process, grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after grace_s; a second cancellation mid-cleanup still kills it before re-raising."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        async with asyncio.timeout(grace_s):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
