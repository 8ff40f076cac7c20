"""The real agent process: soil sensor readings and an alarm reach the COC broker through the spool and uplink."""

from __future__ import annotations

import json
from pathlib import Path

from tests.sensors.sim import SOIL_VALUES, PtyPair, RtuServer
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until


def test_readings_and_alarm_reach_the_coc(broker: Broker, recorder: Recorder, tmp_path: Path) -> None:
    pair = PtyPair(tmp_path / "rs485-dev", tmp_path / "rs485-host").start()
    server = RtuServer(pair.device_end, {1: SOIL_VALUES}).start()
    secret = broker.password_file("agent")
    sensors = {
        "flush_interval_s": 0.2,
        "mqtt": [{"name": "farm", "port": broker.port, "username": "agent", "password_file": str(secret),
                  "topics": [{"filter": "tele/+/SENSOR", "format": "tasmota"}]}],
        "modbus": [{"name": "field-bus", "port": str(pair.host_end),
                    "devices": [{"name": "soil-1", "unit_id": 1, "map": "soil_7in1", "interval_s": 0.5}]}],
        "alarms": [{"name": "soil-dry", "reading": "soil_moisture", "low": 50, "severity": "critical"}],
    }
    config = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", secret, sensors=sensors)
    agent = AgentProcess(config, tmp_path / "agent.log").start()
    try:
        def telemetry() -> list[dict]:
            return [r for m in recorder.on("/telemetry/sensors") for r in m.json()["readings"]]

        readings = wait_until(lambda: [r for r in telemetry() if r["name"] == "soil_moisture"], timeout=30,
                              what="soil telemetry at the COC")
        assert readings[0]["value"] == 45.5 and readings[0]["unit"] == "%"
        assert readings[0]["tags"] == {"source": "field-bus", "device": "soil-1", "unit_id": "1"}

        alarm = wait_until(lambda: recorder.on("/event/sensor_alarm"), timeout=15, what="alarm at the COC")[0]
        body = alarm.json()
        assert alarm.topic == "commune/v1/t1/event/sensor_alarm"
        assert body["severity"] == "critical" and body["data"]["device"] == "soil-1"
        assert body["data"]["direction"] == "low" and body["data"]["value"] == 45.5

        recorder.publish("tele/greenhouse/SENSOR", json.dumps({"SHT3X": {"Temperature": 30.5, "Humidity": 70}}))
        wait_until(lambda: [r for r in telemetry() if r["name"] == "SHT3X.Temperature"
                            and r["tags"]["device"] == "greenhouse"], timeout=15, what="MQTT telemetry at the COC")
    finally:
        agent.stop()
        server.stop()
        pair.stop()
    assert "Traceback" not in agent.log_text()
