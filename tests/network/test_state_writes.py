"""The network driver's state files (links and the LAN inventory) go through ctx.write_state: written off the event
loop, and a data dir that cannot be written is counted as state_write_failed like every other family's."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.statefile import read_json, write_json
from drivers.network.config import NetworkConfig
from drivers.network.inventory import Inventory
from drivers.network.wan import WanFailover
from tests.support.context import RecordingContext
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wait import async_wait_until

CFG = NetworkConfig.model_validate({"inventory": {"subnets": [{"cidr": "192.0.2.0/30", "interface": "nosuchif0"}]}})


@pytest.fixture
def read_only_data(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "ro", "1m") as mnt:
        write_json(mnt / "links.json", {"generation": 1})
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt


def _failures_off_the_loop(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [r.thread for r in caplog.records if r.getMessage().startswith("state_write_failed")
            and r.thread != threading.get_ident()]


def test_the_links_file_is_written_off_the_loop_and_a_failure_counted(read_only_data: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        ctx = RecordingContext("network", CFG, read_only_data)
        WanFailover(ctx, CFG).write_state()
        await async_wait_until(lambda: ctx.counters["state_write_failed"] == 1, 5, what="the failure counted")
        assert _failures_off_the_loop(caplog), "the write ran on the event loop's thread"
        assert "state_write_error" not in ctx.counters

    asyncio.run(main())
    assert read_json(read_only_data / "links.json") == {"generation": 1}


def test_the_inventory_is_written_off_the_loop_and_a_failure_counted(read_only_data: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        ctx = RecordingContext("network", CFG, read_only_data)
        assert CFG.inventory is not None
        await Inventory(ctx, CFG.inventory).scan_once()  # the scan fails (no such interface), the table is saved
        assert ctx.counters["arp_scan_error"] == 1 and ctx.counters["state_write_failed"] == 1
        assert _failures_off_the_loop(caplog), "the write ran on the event loop's thread"

    asyncio.run(main())


def test_the_links_file_lands_where_the_cli_reads_it(tmp_path: Path) -> None:
    async def main() -> None:
        ctx = RecordingContext("network", CFG, tmp_path / "data")
        wan = WanFailover(ctx, CFG)
        wan.write_state()
        await async_wait_until(lambda: read_json(wan.state_path) is not None, 5, what="links.json")
        doc = read_json(wan.state_path)
        assert doc is not None and doc["links"] == [] and doc["mode"] in ("managed", "observe-only")

    asyncio.run(main())
