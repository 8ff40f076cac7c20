"""The agent with one extra driver that sets the link in use from a JSON file ({"name", "metered"}), as the WAN
driver does on a box: for link-aware core behaviour (a release download deferred on a metered link)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from agent.config import load
from agent.driver import Context, LinkState
from agent.section import Section
from agent.supervisor import Supervisor, run_supervisor
from drivers.registry import DriverSpec


class LinkFileConfig(Section):
    path: Path


class LinkFileDriver:
    section: ClassVar[str] = "linkfile"
    Config: ClassVar[type[Section]] = LinkFileConfig

    async def run(self, ctx: Context) -> None:
        seen: Any = None
        ctx.health("ok")
        while True:
            try:
                doc = json.loads(ctx.config.path.read_text())
            except (OSError, ValueError):
                doc = seen
            if doc != seen and isinstance(doc, dict):
                seen = doc
                ctx.set_link(LinkState(str(doc.get("name", "")), bool(doc.get("metered")), time.time()))
            await asyncio.sleep(0.1)


def main(config_path: str, link_file: str) -> int:
    from agent.logs import setup_logging

    loaded = load(config_path)
    setup_logging("INFO")
    spec = DriverSpec("linkfile", "tests.support.linkagent:LinkFileConfig", "tests.support.linkagent:LinkFileDriver")
    return run_supervisor(Supervisor(loaded, extra=lambda: {"linkfile": (spec, LinkFileConfig(path=link_file))}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
