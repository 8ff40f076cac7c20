#!/usr/bin/env python3
"""speaker_down_detect_s: a loudspeaker unplugged → the broadcast health says its zone's speaker is down.

The real broadcast driver (in-process, production speaker_checks: every 10 s, 2 s timeout, down after 2 failed
checks) watches one RTP speaker that answers ping and its HTTP status API. It is unplugged at the worst moment —
right after a check found it well — so the figure is the longest wait a technician sees. As root the speaker sits
in a network namespace and unplugging is its link going down (nothing answers any more); otherwise its status API
on loopback stops (connection refused).
  python scripts/bench/lib/speaker_down.py      prints one JSON line {"speaker_down_detect_s": ...}
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from drivers.broadcast.config import BroadcastConfig  # noqa: E402
from tests.broadcast.harness import running  # noqa: E402
from tests.broadcast.support import StatusApi  # noqa: E402
from tests.network.netlab import Lab  # noqa: E402
from tests.support.netns import run_in_netns  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.wait import async_wait_until  # noqa: E402

SPEAKER = "loa-bench"


async def _detect(tmp: Path, speaker: dict[str, str], api: StatusApi, unplug: Callable[[], None]) -> float:
    cfg = BroadcastConfig.model_validate({
        "zones": {"loa": {"type": "rtp", "group": "239.255.77.9", "port": free_port(socket.SOCK_DGRAM), "ttl": 0,
                          "interface": "127.0.0.1", "speakers": [speaker]}},
        "quiet_hours": None, "realtime_priority": 0, "tts": {"engines": ["espeak"]}})
    async with running(cfg, tmp / "data") as ctx:
        await async_wait_until(lambda: api.hits >= 1 and ctx.state == "ok", timeout=30, what="the first check")
        seen = api.hits
        await async_wait_until(lambda: api.hits > seen, timeout=30, interval=0.005, what="a check")
        unplug()  # just after a check found it answering: the longest wait there is
        began = time.monotonic()
        await async_wait_until(lambda: ctx.state == "degraded" and SPEAKER in ctx.states[-1][1], timeout=120,
                               interval=0.05, what="health naming the speaker down")
        return round(time.monotonic() - began, 2)


def measure() -> float:
    """Seconds from a speaker unplugged to the health that says its zone's speaker is down."""
    with tempfile.TemporaryDirectory(prefix="bench-speaker-") as tmp:
        if os.geteuid() != 0:
            api = StatusApi()
            try:
                return asyncio.run(_detect(Path(tmp), {"name": SPEAKER, "status_url": api.url}, api, api.stop))
            finally:
                api.stop()
        lab = Lab("bspk")
        try:
            agent_ns, speaker_ns = lab.ns("ag"), lab.ns("sp")
            lab.veth(agent_ns, "lan0", "10.78.0.1/24", speaker_ns, "eth0", "10.78.0.2/24")
            api = run_in_netns(speaker_ns, lambda: StatusApi(bind="10.78.0.2"))
            speaker = {"name": SPEAKER, "host": "10.78.0.2", "status_url": api.url}
            try:
                return run_in_netns(agent_ns, lambda: asyncio.run(_detect(
                    Path(tmp), speaker, api, lambda: lab.ip(speaker_ns, "link", "set", "eth0", "down"))))
            finally:
                api.stop()
        finally:
            lab.close()


if __name__ == "__main__":
    print(json.dumps({"speaker_down_detect_s": measure()}))
