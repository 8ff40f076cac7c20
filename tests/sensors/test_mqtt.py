"""MQTT sources against a real mosquitto: Tasmota, Zigbee2MQTT, JSON mappings, garbage, broker restarts."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from drivers.sensors.config import SensorsConfig
from drivers.sensors.driver import SensorsDriver
from tests.support.context import RecordingContext
from tests.support.mosquitto import Broker, Recorder
from tests.support.tasks import cancel_and_wait
from tests.support.wait import async_wait_until


def _config(broker: Broker, **extra: Any) -> SensorsConfig:
    return SensorsConfig.model_validate({
        "flush_interval_s": 0.1,
        "mqtt": [{
            "name": "farm", "port": broker.port, "username": "agent",
            "password_file": str(broker.password_file("agent")), "reconnect_min_s": 1, "reconnect_max_s": 1,
            "topics": [
                {"filter": "tele/+/SENSOR", "format": "tasmota",
                 "fields": [{"source": "AM2301.Temperature", "name": "air_temperature", "unit": "°C"},
                            {"source": "AM2301.Humidity", "name": "air_humidity"}]},
                {"filter": "zigbee2mqtt/#", "format": "zigbee2mqtt"},
                {"filter": "farm/+/weather", "format": "json",
                 "fields": [{"source": "main.temp_f", "name": "air_temperature", "from_unit": "°F", "unit": "°C"},
                            {"source": "wind.speed_kmh", "name": "wind_speed", "from_unit": "km/h", "unit": "m/s"},
                            {"source": "rain.0.mm", "name": "rain", "unit": "mm", "scale": 0.5}]},
                {"filter": "farm/tank/+/level", "format": "number", "reading": "water_level", "unit": "cm",
                 "device": "tank-{2}"},
            ],
        }],
        **extra,
    })


async def _start(ctx: RecordingContext) -> asyncio.Task[None]:
    task = asyncio.create_task(SensorsDriver().run(ctx))
    await async_wait_until(lambda: ctx.state == "ok" or task.done(), timeout=10, what="driver connected")
    assert not task.done()
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    await cancel_and_wait(task)


def _one(ctx: RecordingContext, name: str, device: str) -> Any:
    hits = [r for r in ctx.readings if r.name == name and r.tags.get("device") == device]
    return hits[-1] if hits else None


def test_tasmota_zigbee2mqtt_json_and_number(broker: Broker, recorder: Recorder, tmp_path: Path) -> None:
    asyncio.run(_test_tasmota_zigbee2mqtt_json_and_number(broker, recorder, tmp_path))


async def _test_tasmota_zigbee2mqtt_json_and_number(broker: Broker, recorder: Recorder, tmp_path: Path) -> None:
    ctx = RecordingContext("sensors", _config(broker), tmp_path / "data")
    task = await _start(ctx)
    try:
        recorder.publish("tele/greenhouse-1/SENSOR", json.dumps({
            "Time": "2024-05-01T10:00:00", "AM2301": {"Temperature": 86.0, "Humidity": 71.5}, "TempUnit": "F"}))
        recorder.publish("zigbee2mqtt/field/soil probe 3", json.dumps({
            "soil_moisture": 31, "temperature": 24.5, "battery": 88, "linkquality": 120, "water_leak": False,
            "last_seen": "2024-05-01T10:00:00Z", "update": {"state": "idle"}}))
        recorder.publish("zigbee2mqtt/bridge/state", "online")
        recorder.publish("zigbee2mqtt/field/soil probe 3/availability", "online")
        recorder.publish("farm/station-1/weather", json.dumps({
            "main": {"temp_f": 50}, "wind": {"speed_kmh": 36}, "rain": [{"mm": 3}], "extra": "ignored"}))
        recorder.publish("farm/tank/north/level", "123.5")

        await async_wait_until(lambda: _one(ctx, "water_level", "tank-north"), timeout=10, what="number reading")
        await async_wait_until(lambda: _one(ctx, "air_temperature", "greenhouse-1"), timeout=10, what="tasmota")
        t = _one(ctx, "air_temperature", "greenhouse-1")
        assert (t.value, t.unit, t.tags["source"]) == (30.0, "°C", "farm")
        assert _one(ctx, "air_humidity", "greenhouse-1").value == 71.5

        await async_wait_until(lambda: _one(ctx, "soil_moisture", "field/soil probe 3"), timeout=10, what="z2m")
        z = {r.name: r for r in ctx.readings if r.tags.get("device") == "field/soil probe 3"}
        assert z["soil_moisture"].unit == "%" and z["temperature"].value == 24.5
        assert z["water_leak"].value is False and "last_seen" not in z and "update.state" not in z
        assert not [r for r in ctx.readings if r.tags.get("device", "").startswith("bridge")]

        await async_wait_until(lambda: _one(ctx, "wind_speed", "station-1"), timeout=10, what="json mapping")
        assert _one(ctx, "air_temperature", "station-1").value == 10.0
        assert _one(ctx, "wind_speed", "station-1").value == 10.0
        assert (_one(ctx, "rain", "station-1").value, _one(ctx, "rain", "station-1").unit) == (1.5, "mm")
        assert ctx.counters["bad_payload"] == 0
    finally:
        await _stop(task)


def _garbage(rng: random.Random, i: int) -> bytes:
    kind = i % 8
    if kind == 0:
        return b'{"AM2301": {"Temperature": NaN}}'
    if kind == 1:
        return b'{"AM2301": {"Temperature": 1' + b"0" * 5000 + b"}}"
    if kind == 2:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    if kind == 3:
        return b"[" * 5000
    if kind == 4:
        return json.dumps({"AM2301": {"Temperature": "hot", "Humidity": [1, 2]}}).encode()
    if kind == 5:
        return b'{"AM2301": ' + b"x" * 70000 + b"}"
    if kind == 6:
        return b'"just a string"'
    return b'{"AM2301": {"Temperature": 1e999, "Humidity": Infinity}}'


def test_ten_thousand_malformed_payloads_are_counted_not_fatal(broker: Broker, recorder: Recorder,
                                                                      tmp_path: Path, caplog: Any) -> None:
    asyncio.run(_test_ten_thousand_malformed_payloads_are_counted_not_fatal(broker, recorder, tmp_path, caplog))


async def _test_ten_thousand_malformed_payloads_are_counted_not_fatal(broker: Broker, recorder: Recorder,
                                                                      tmp_path: Path, caplog: Any) -> None:
    ctx = RecordingContext("sensors", _config(broker), tmp_path / "data")
    task = await _start(ctx)
    rng = random.Random(6)
    n = 10_000
    try:
        for i in range(n):
            recorder.client.publish("tele/bad-device/SENSOR", _garbage(rng, i), qos=1)
        recorder.publish("tele/good-device/SENSOR", json.dumps({"AM2301": {"Temperature": 20, "Humidity": 50}}))
        await async_wait_until(lambda: ctx.counters["bad_payload"] >= n, timeout=60,
                               what=f"{n} bad payloads counted (have {ctx.counters['bad_payload']})")
        await async_wait_until(lambda: _one(ctx, "air_temperature", "good-device"), timeout=10, what="good reading")
        assert ctx.counters["bad_payload"] == n
        assert not task.done()
        assert not [r for r in ctx.readings if r.tags.get("device") == "bad-device"]
        bad_lines = [r for r in caplog.records if "bad_payload" in r.getMessage() or "bad_field" in r.getMessage()]
        assert 0 < len(bad_lines) < 50, "bad payloads are logged, rate-limited"
    finally:
        await _stop(task)


def test_reconnects_after_broker_outage(broker: Broker, recorder: Recorder, tmp_path: Path) -> None:
    asyncio.run(_test_reconnects_after_broker_outage(broker, recorder, tmp_path))


async def _test_reconnects_after_broker_outage(broker: Broker, recorder: Recorder, tmp_path: Path) -> None:
    ctx = RecordingContext("sensors", _config(broker), tmp_path / "data")
    task = await _start(ctx)
    try:
        broker.stop()
        await async_wait_until(lambda: ctx.events_of("sensor_source_lost"), timeout=10, what="lost event")
        assert ctx.state == "degraded"
        await asyncio.sleep(2.5)  # an outage spanning several reconnect attempts
        broker.start()
        await async_wait_until(lambda: ctx.events_of("sensor_source_back"), timeout=15, what="back event")
        recorder2 = Recorder(broker.port).start()
        try:
            recorder2.publish("farm/tank/south/level", "42")
            await async_wait_until(lambda: _one(ctx, "water_level", "tank-south"), timeout=10, what="reading after")
        finally:
            recorder2.stop()
        assert ctx.state == "ok"
    finally:
        await _stop(task)
