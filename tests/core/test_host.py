"""The host-metrics driver: its readings follow the link's cost, and its threshold alarms have hysteresis and are
raised again, not lost, when the spool could not take them."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from agent.driver import LinkState
from agent.host import HostConfig, HostDriver, Threshold, ThresholdTracker
from tests.support.agentproc import AgentProcess, write_config
from tests.support.context import RecordingContext
from tests.support.mosquitto import Broker, Recorder
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wait import async_wait_until, wait_until

BASE = "commune/v1/t1"


def test_threshold_alarm_has_hysteresis() -> None:
    t = ThresholdTracker("disk_high", Threshold(high=90, clear=85))
    assert t.update("/", 80) is None
    raised = t.update("/", 91)
    assert raised is not None and raised.data["state"] == "raised"
    assert t.update("/", 95) is None and t.update("/", 87) is None and t.update("/", 89.9) is None
    cleared = t.update("/", 84)
    assert cleared is not None and cleared.data["state"] == "cleared"
    assert t.update("/", 86) is None


def test_host_driver_goes_frugal_on_a_metered_link(tmp_path: Path) -> None:
    ctx = RecordingContext("host", HostConfig(interval_s=1, metered_interval_s=3600), tmp_path)

    async def scenario() -> None:
        task = asyncio.create_task(HostDriver().run(ctx))
        try:
            await async_wait_until(lambda: len({r.ts for r in ctx.readings_named("cpu_pct")}) >= 2, 10)
            ctx.set_link(LinkState("lte", metered=True))
            n = len(ctx.readings_named("cpu_pct"))
            # two unmetered intervals: at most the round whose pause had begun before the switch may come
            await asyncio.sleep(2.5)
            assert len(ctx.readings_named("cpu_pct")) <= n + 1
            names = {r.name for r in ctx.readings}
            assert {"mem_used_pct", "disk_used_pct", "uptime", "agent_rss", "agent_fds", "load1"} <= names
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_a_reverted_transition_is_made_again_by_the_next_value() -> None:
    t = ThresholdTracker("disk_high", Threshold(high=90, clear=85))
    raised = t.update("/", 95)
    assert raised is not None
    t.revert("/")  # its event was not stored
    again = t.update("/", 93)
    assert again is not None and again.data["state"] == "raised"
    assert t.update("/", 94) is None
    cleared = t.update("/", 50)
    assert cleared is not None
    t.revert("/")
    assert t.update("/", 60) is not None and t.update("/", 40) is None


def test_a_disk_alarm_raised_while_the_spool_refuses_reaches_the_coc_later(tmp_path: Path) -> None:
    """The data disk is full, so the spool refuses the disk_high alarm; once the spool writes again (the disk
    still above the threshold) the alarm is raised again and delivered."""
    broker = Broker(tmp_path / "mosq").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/#",)).start()
    with mounted_tmpfs(tmp_path / "mnt", "8m") as mnt:
        keep, rest = mnt / "keep", mnt / "rest"
        subprocess.run(["dd", "if=/dev/zero", f"of={keep}", "bs=1M", "count=5"], capture_output=True, check=True)
        subprocess.run(["dd", "if=/dev/zero", f"of={rest}", "bs=64k"], capture_output=True)  # until full
        data = mnt / "data"
        cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"),
                           host={"interval_s": 1, "disk_pct": {"high": 50, "clear": 10}})
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        try:
            def refused() -> bool:
                for m in rec.on(f"{BASE}/health"):
                    doc = m.json()
                    if doc["spool"]["spool_state"] == "degraded" and \
                            doc["drivers"].get("host", {}).get("counters", {}).get("emit_refused", 0) >= 2:
                        return True
                return False

            wait_until(refused, 20, what="the spool refusing the host driver's alarm")
            assert "kind=disk_high" in agent.log_text() and not rec.on(f"{BASE}/event/disk_high")
            rest.unlink()  # room for the spool; the disk stays above 50 %
            alarm = wait_until(lambda: rec.on(f"{BASE}/event/disk_high"), 30, what="disk_high delivered")[0].json()
            assert alarm["data"]["state"] == "raised" and alarm["data"]["key"] == "data", alarm
        finally:
            agent.stop()
            rec.stop()
            broker.stop()
