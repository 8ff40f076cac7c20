"""Serial line sources on socat pty pairs: formats, garbage lines, unplug and replug."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.sensors.config import SensorsConfig
from drivers.sensors.driver import SensorsDriver
from tests.sensors.sim import LineDevice, PtyPair
from tests.support.context import RecordingContext
from tests.support.tasks import cancel_and_wait
from tests.support.wait import async_wait_until


def _line(n: int) -> bytes:
    if n % 5 == 4:
        return b"\xff\xfe garbage \x00\n"  # a noisy line now and then
    return f"T:{20 + n % 3}.5C H:{40 + n % 10}% N:{n}\r\n".encode()


def test_regex_lines_and_replug_within_two_seconds(tmp_path: Path) -> None:
    asyncio.run(_replug(tmp_path))


async def _replug(tmp_path: Path) -> None:
    pair = PtyPair(tmp_path / "dev", tmp_path / "ttyUSB-weather").start()
    device = LineDevice(pair.device_end, _line, period=0.05).start()
    cfg = SensorsConfig.model_validate({
        "flush_interval_s": 0.1,
        "serial": [{"name": "shed", "port": str(pair.host_end), "baud": 9600, "format": "regex",
                    "pattern": r"T:(?P<temp>-?[\d.]+)C H:(?P<hum>\d+)% N:(?P<n>\d+)",
                    "fields": [{"source": "temp", "name": "air_temperature", "unit": "°C"},
                               {"source": "hum", "name": "air_humidity", "unit": "%"},
                               {"source": "n", "name": "counter"}]}],
    })
    ctx = RecordingContext("sensors", cfg, tmp_path / "data")
    task = asyncio.create_task(SensorsDriver().run(ctx))
    try:
        await async_wait_until(lambda: len(ctx.readings_named("counter")) >= 5, timeout=10, what="lines")
        r = ctx.readings_named("air_temperature")[-1]
        assert r.unit == "°C" and r.tags == {"source": "shed", "device": "shed"} and r.value in (20.5, 21.5, 22.5)
        await async_wait_until(lambda: ctx.counters["bad_payload"] >= 1, timeout=10, what="garbage counted")

        pair.stop()  # unplug
        await async_wait_until(lambda: ctx.events_of("sensor_source_lost"), timeout=10, what="lost event")
        assert ctx.state == "degraded"
        await asyncio.sleep(1.0)
        seen = len(ctx.readings_named("counter"))

        pair.start()  # replug
        back = time.monotonic()
        await async_wait_until(lambda: len(ctx.readings_named("counter")) > seen, timeout=10, what="readings again")
        elapsed = time.monotonic() - back
        assert elapsed < 2.0, f"readings came back {elapsed:.2f}s after the port returned"
        await async_wait_until(lambda: ctx.events_of("sensor_source_back"), timeout=5, what="back event")
        await async_wait_until(lambda: ctx.state == "ok", timeout=5, what="healthy again")
        assert not task.done()
    finally:
        await cancel_and_wait(task)
        device.stop()
        pair.stop()


def test_csv_and_key_value_lines_and_staleness(tmp_path: Path) -> None:
    asyncio.run(_csv_kv(tmp_path))


async def _csv_kv(tmp_path: Path) -> None:
    csv_pair = PtyPair(tmp_path / "csv-dev", tmp_path / "csv-host").start()
    kv_pair = PtyPair(tmp_path / "kv-dev", tmp_path / "kv-host").start()
    csv_dev = LineDevice(csv_pair.device_end, lambda n: f"{n},12.5,OK,{80 + n % 2}\n".encode(), 0.05).start()
    kv_dev = LineDevice(kv_pair.device_end, lambda n: b"level=1.25;flow=3\n", 0.05).start()
    cfg = SensorsConfig.model_validate({
        "flush_interval_s": 0.1,
        "serial": [
            {"name": "pump", "port": str(csv_pair.host_end), "format": "csv",
             "columns": ["seq", "pressure", "", "rpm"],
             "fields": [{"source": "pressure", "name": "pressure", "unit": "hPa", "from_unit": "kPa"},
                        {"source": "rpm", "name": "rpm"}]},
            {"name": "canal", "port": str(kv_pair.host_end), "format": "key_value", "pair_separator": ";",
             "stale_after_s": 1.0,
             "fields": [{"source": "level", "name": "water_level", "unit": "cm", "from_unit": "m"},
                        {"source": "flow", "name": "flow", "unit": "m³/s"}]},
        ],
    })
    ctx = RecordingContext("sensors", cfg, tmp_path / "data")
    task = asyncio.create_task(SensorsDriver().run(ctx))
    try:
        await async_wait_until(lambda: ctx.readings_named("rpm") and ctx.readings_named("flow"), timeout=10,
                               what="csv and kv readings")
        assert ctx.readings_named("pressure")[-1].value == 125.0
        assert not ctx.readings_named("seq")
        level = ctx.readings_named("water_level")[-1]
        assert (level.value, level.unit, level.tags["device"]) == (125.0, "cm", "canal")

        kv_dev.stop()
        await async_wait_until(lambda: ctx.events_of("sensor_stale"), timeout=10, what="stale event")
        stale = ctx.events_of("sensor_stale")[0]
        assert stale.data["device"] == "canal" and stale.severity == "warning"
        kv_dev = LineDevice(kv_pair.device_end, lambda n: b"level=1.25;flow=4\n", 0.05).start()
        await async_wait_until(lambda: ctx.events_of("sensor_fresh"), timeout=10, what="fresh event")
    finally:
        await cancel_and_wait(task)
        csv_dev.stop()
        kv_dev.stop()
        csv_pair.stop()
        kv_pair.stop()


def test_a_bug_in_a_source_thread_crashes_the_driver_for_a_restart(tmp_path: Path, monkeypatch: Any) -> None:
    from drivers.sensors.formats import Decoder

    def broken(self: Decoder, payload: bytes, topic: str = "") -> None:
        raise ZeroDivisionError("decoder bug")

    monkeypatch.setattr(Decoder, "decode", broken)
    pair = PtyPair(tmp_path / "dev", tmp_path / "host").start()
    device = LineDevice(pair.device_end, lambda n: b"1\n", 0.05).start()
    cfg = SensorsConfig.model_validate({"flush_interval_s": 0.1, "serial": [
        {"name": "s", "port": str(pair.host_end), "format": "number"}]})
    ctx = RecordingContext("sensors", cfg, tmp_path / "data")

    async def run() -> None:
        async with asyncio.timeout(10):
            await SensorsDriver().run(ctx)

    try:
        with pytest.raises(RuntimeError, match="decoder bug"):
            asyncio.run(run())
    finally:
        device.stop()
        pair.stop()
