"""Modbus RTU against a pymodbus server on a socat pty pair: soil map, a silent unit, unplug and replug."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from drivers.sensors.config import SensorsConfig
from drivers.sensors.driver import SensorsDriver
from tests.sensors.sim import SOIL_VALUES, PtyPair, RtuServer
from tests.support.context import RecordingContext
from tests.support.tasks import cancel_and_wait
from tests.support.wait import async_wait_until


def _config(port: Path) -> SensorsConfig:
    return SensorsConfig.model_validate({
        "flush_interval_s": 0.1,
        "modbus": [{
            "name": "field-bus", "port": str(port), "baud": 9600,
            "devices": [
                {"name": "soil-1", "unit_id": 1, "map": "soil_7in1", "interval_s": 0.2},
                {"name": "ghost", "unit_id": 7, "map": "soil_7in1", "interval_s": 0.2, "timeout_s": 0.2,
                 "retries": 1, "offline_after": 2, "offline_poll_s": 1.0},
                {"name": "meter", "unit_id": 3, "interval_s": 0.2, "registers": [
                    {"name": "energy", "address": 0, "type": "uint32", "word_order": "little", "unit": "kWh"},
                    {"name": "power", "address": 2, "type": "float32", "unit": "W"},
                    {"name": "missing", "address": 40, "table": "input"}]},
            ],
        }],
        "alarms": [{"reading": "soil_moisture", "low": 50, "hysteresis": 2, "severity": "critical"}],
    })


# float32 1234.5 = 0x449A5000; uint32 70000 = 0x00011170 sent low word first
METER = [0x1170, 0x0001, 0x449A, 0x5000]


def test_soil_sensor_silent_unit_exception_and_replug(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    pair = PtyPair(tmp_path / "rs485-dev", tmp_path / "rs485-host").start()
    server = RtuServer(pair.device_end, {1: SOIL_VALUES, 3: METER}, silent=(7,)).start()
    ctx = RecordingContext("sensors", _config(pair.host_end), tmp_path / "data")
    task = asyncio.create_task(SensorsDriver().run(ctx))
    try:
        await async_wait_until(lambda: ctx.readings_named("soil_potassium"), timeout=10, what="soil readings")
        soil = {r.name: r for r in ctx.readings if r.tags["device"] == "soil-1"}
        assert soil["soil_moisture"].value == 45.5 and soil["soil_moisture"].unit == "%"
        assert soil["soil_temperature"].value == -2.5 and soil["soil_temperature"].unit == "°C"
        assert (soil["soil_ec"].value, soil["soil_ph"].value) == (1200, 6.5)
        assert [soil[k].value for k in ("soil_nitrogen", "soil_phosphorus", "soil_potassium")] == [30, 20, 100]
        assert soil["soil_ph"].tags == {"source": "field-bus", "device": "soil-1", "unit_id": "1"}

        await async_wait_until(lambda: ctx.readings_named("power"), timeout=10, what="meter readings")
        assert ctx.readings_named("energy")[-1].value == 70000
        assert ctx.readings_named("power")[-1].value == 1234.5
        assert ctx.counters["modbus_exception"] > 0  # input register 40 is not there: exception, not a timeout

        # moisture 45.5 < 50: a critical alarm at once (no minimum duration)
        alarm = (await async_wait_until(lambda: ctx.events_of("sensor_alarm"), timeout=5, what="alarm"))[0]
        assert (alarm.data["device"], alarm.data["direction"], alarm.severity) == ("soil-1", "low", "critical")

        offline = await async_wait_until(lambda: ctx.events_of("sensor_device_offline"), timeout=10, what="offline")
        assert offline[0].data["device"] == "ghost" and offline[0].data["unit_id"] == 7
        assert ctx.state == "degraded" and "ghost" in ctx.states[-1][1]
        # the silent unit does not stall the others: soil-1 keeps its 0.2 s pace
        n0, t0 = len(ctx.readings_named("soil_moisture")), time.monotonic()
        await async_wait_until(lambda: len(ctx.readings_named("soil_moisture")) >= n0 + 5, timeout=10,
                               what="soil keeps polling")
        assert time.monotonic() - t0 < 5

        pair.stop()  # unplug the USB-RS485 adapter
        server.stop()
        await async_wait_until(lambda: ctx.events_of("sensor_source_lost"), timeout=10, what="port lost")
        await asyncio.sleep(1.0)
        seen = len(ctx.readings_named("soil_moisture"))
        pair.start()
        back = time.monotonic()
        server = RtuServer(pair.device_end, {1: SOIL_VALUES, 3: METER}, silent=(7,)).start()
        await async_wait_until(lambda: len(ctx.readings_named("soil_moisture")) > seen, timeout=10,
                               what="readings after replug")
        elapsed = time.monotonic() - back
        assert elapsed < 2.0, f"readings came back {elapsed:.2f}s after the port returned"
        assert ctx.events_of("sensor_source_back")
        assert not task.done()
    finally:
        await cancel_and_wait(task)
        server.stop()
        pair.stop()


def test_silent_unit_comes_back_online(tmp_path: Path) -> None:
    asyncio.run(_comes_back(tmp_path))


async def _comes_back(tmp_path: Path) -> None:
    pair = PtyPair(tmp_path / "dev", tmp_path / "host").start()
    server = RtuServer(pair.device_end, {1: SOIL_VALUES}, silent=(1,)).start()
    cfg = SensorsConfig.model_validate({"flush_interval_s": 0.1, "modbus": [{
        "name": "bus", "port": str(pair.host_end),
        "devices": [{"name": "soil", "unit_id": 1, "map": "soil_7in1", "interval_s": 0.1, "timeout_s": 0.1,
                     "retries": 0, "offline_after": 2, "offline_poll_s": 0.3}]}]})
    ctx = RecordingContext("sensors", cfg, tmp_path / "data")
    task = asyncio.create_task(SensorsDriver().run(ctx))
    try:
        await async_wait_until(lambda: ctx.events_of("sensor_device_offline"), timeout=10, what="offline")
        server.silent.clear()  # the unit starts answering (power restored)
        await async_wait_until(lambda: ctx.events_of("sensor_device_online"), timeout=10, what="online again")
        await async_wait_until(lambda: ctx.readings_named("soil_moisture"), timeout=5, what="readings")
        await async_wait_until(lambda: ctx.state == "ok", timeout=5, what="healthy")
    finally:
        await cancel_and_wait(task)
        server.stop()
        pair.stop()


def test_unplug_is_reported_while_the_bus_is_idle(tmp_path: Path) -> None:
    asyncio.run(_idle_unplug(tmp_path))


async def _idle_unplug(tmp_path: Path) -> None:
    pair = PtyPair(tmp_path / "dev", tmp_path / "host").start()
    server = RtuServer(pair.device_end, {1: SOIL_VALUES}).start()
    cfg = SensorsConfig.model_validate({"flush_interval_s": 0.1, "modbus": [{
        "name": "bus", "port": str(pair.host_end),
        "devices": [{"name": "soil", "unit_id": 1, "map": "soil_7in1", "interval_s": 60}]}]})
    ctx = RecordingContext("sensors", cfg, tmp_path / "data")
    task = asyncio.create_task(SensorsDriver().run(ctx))
    try:
        await async_wait_until(lambda: ctx.readings_named("soil_moisture"), timeout=10, what="first poll")
        pair.stop()
        unplugged = time.monotonic()
        lost = await async_wait_until(lambda: ctx.events_of("sensor_source_lost"), timeout=5, what="lost event")
        assert time.monotonic() - unplugged < 2.0, "reported long before the next poll (60 s away)"
        assert lost[0].data["kind"] == "modbus" and lost[0].severity == "warning"
    finally:
        await cancel_and_wait(task)
        server.stop()
        pair.stop()
