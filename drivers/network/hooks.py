"""Operator programs run on link events: fixed argv, details in COMMUNE_* environment variables."""

from __future__ import annotations

import asyncio
import os

from agent.children import ChildTimeout, run_child
from agent.logs import KvLogger
from drivers.network.config import Hook


async def run_hook(hook: Hook, kind: str, details: dict[str, str], log: KvLogger) -> int | None:
    """Run one hook to completion (killed with its children after its timeout or when the driver stops); returns its
    exit code, None on failure."""
    env = dict(os.environ)
    env["COMMUNE_EVENT"] = kind
    env.update({f"COMMUNE_{k.upper()}": v for k, v in details.items()})
    try:
        res = await run_child(hook.argv, hook.timeout_s, env=env, capture_stdout=False)
    except ChildTimeout:
        log.error("hook_timeout", hook=hook.argv[0], link_event=kind, timeout_s=hook.timeout_s)
        return None
    except OSError as exc:
        log.error("hook_failed", hook=hook.argv[0], link_event=kind, error=str(exc))
        return None
    if res.code != 0:
        log.warning("hook_exit", hook=hook.argv[0], link_event=kind, code=res.code,
                    stderr=res.stderr.decode(errors="replace").strip()[-200:])
    else:
        log.info("hook_done", hook=hook.argv[0], link_event=kind)
    return res.code


async def run_hooks(hooks: list[Hook], kind: str, details: dict[str, str], log: KvLogger) -> None:
    """All hooks subscribed to `kind`, concurrently; a failing hook never stops the others."""
    chosen = [h for h in hooks if kind in h.events]
    if chosen:
        await asyncio.gather(*(run_hook(h, kind, details, log) for h in chosen))
