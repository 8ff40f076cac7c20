"""ConsoleDriver: serves the console (server.py) on the agent's loop, keeps its feed file and prunes its audit."""

from __future__ import annotations

import asyncio
import ssl
import time

from aiohttp import web

from agent.driver import Context
from agent.statefile import write_json_logged
from drivers.console.feed import FEED_FILE
from drivers.console.server import Console, build_app

FEED_SAVE_S = 10.0  # how much of the status page's feed a power cut may cost
AUDIT_PRUNE_S = 3600.0


class ConsoleDriver:
    """Serves the console on the LAN; supervised like a driver (a port in use is a crash, retried with backoff)."""

    async def run(self, ctx: Context) -> None:
        c = Console(ctx)  # type: ignore[arg-type]
        cfg = c.cfg
        ctx.health("starting", "listening on {address}:{port}", address=cfg.listen, port=cfg.port)
        feed_path = ctx.data_dir / FEED_FILE
        problem = c.feed.load(feed_path)
        if problem is not None:  # the page starts empty; the file is written again from what comes
            ctx.log.warning("feed_file_unreadable", path=str(feed_path), reason=problem)
            ctx.count("feed_file_bad")
        untap = c.ctx.tap(c.feed)
        app_runner = web.AppRunner(build_app(c), access_log=None, handle_signals=False)
        await app_runner.setup()
        refusals = asyncio.get_running_loop().create_task(c.report_refusals())
        try:
            tls = None
            if cfg.tls_cert_file is not None and cfg.tls_key_file is not None:
                tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                tls.load_cert_chain(str(cfg.tls_cert_file), str(cfg.tls_key_file))
            site = web.TCPSite(app_runner, cfg.listen, cfg.port, ssl_context=tls, reuse_address=True)
            await site.start()
            scheme = "https" if tls else "http"
            ctx.log.info("console_listening", url=f"{scheme}://{cfg.listen}:{cfg.port}/", users=len(c.accounts.users()))
            ctx.health("ok", "{url}", url=f"{scheme}://{cfg.listen}:{cfg.port}/")
            pruned = time.monotonic()
            while True:
                await asyncio.sleep(FEED_SAVE_S)
                if c.feed.changed:
                    await asyncio.to_thread(write_json_logged, feed_path, c.feed.state(), ctx.log, indent=None)
                if time.monotonic() - pruned >= AUDIT_PRUNE_S:
                    pruned = time.monotonic()
                    c.audit.prune(time.time() - cfg.audit_keep_days * 86400)
        finally:
            refusals.cancel()
            untap()
            try:
                await c.flush_refusals()  # the sums of the window under way are not lost at a stop
            finally:
                if c.feed.changed:
                    write_json_logged(feed_path, c.feed.state(), ctx.log, indent=None)
                await app_runner.cleanup()
                await c.passwords.close()
                c.audit.close()
                if c._store is not None:
                    c._store.close()
