"""Operator programs run on link events: fixed argv, details in COMMUNE_* environment variables."""

from __future__ import annotations

import asyncio
import os

from agent.logs import KvLogger
from drivers.network.config import Hook


async def run_hook(hook: Hook, kind: str, details: dict[str, str], log: KvLogger) -> int | None:
    """Run one hook to completion (killed after its timeout); returns its exit code, None on failure."""
    env = dict(os.environ)
    env["COMMUNE_EVENT"] = kind
    env.update({f"COMMUNE_{k.upper()}": v for k, v in details.items()})
    try:
        proc = await asyncio.create_subprocess_exec(*hook.argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        log.error("hook_failed", hook=hook.argv[0], event=kind, error=str(exc))
        return None
    try:
        async with asyncio.timeout(hook.timeout_s):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        log.error("hook_timeout", hook=hook.argv[0], event=kind, timeout_s=hook.timeout_s)
        return None
    if proc.returncode != 0:
        log.warning("hook_exit", hook=hook.argv[0], event=kind, code=proc.returncode,
                    stderr=(err or b"").decode(errors="replace").strip()[-200:])
    else:
        log.info("hook_done", hook=hook.argv[0], event=kind)
    return proc.returncode


async def run_hooks(hooks: list[Hook], kind: str, details: dict[str, str], log: KvLogger) -> None:
    """All hooks subscribed to `kind`, concurrently; a failing hook never stops the others."""
    chosen = [h for h in hooks if kind in h.events]
    if chosen:
        await asyncio.gather(*(run_hook(h, kind, details, log) for h in chosen))
