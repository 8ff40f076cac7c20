"""Demo devices for the sensors family: an RS485 soil sensor on a pty and an MQTT weather station.

start(workdir) runs socat (a pty pair at fixed paths) and one child process of this file that serves the
soil sensor (pymodbus RTU server, unit 1) and publishes the weather station to the demo broker. The soil
dries out from 26 % to 14 % in the first half minute, so the demo's `soil-dry` alarm reaches the COC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from tests.support.procs import stop_process

DEMO_DIR = Path("/tmp/commune-demo/sensors")
SENSOR_END = DEMO_DIR / "soil-sensor"  # the probe's side of the RS485 "cable"
AGENT_END = DEMO_DIR / "rs485-0"  # what demo.yaml polls
SECRET = DEMO_DIR / "sensor.secret"  # demo.yaml's password_file for the broker user `sensor`
BROKER_PORT = 18830
WEATHER_TOPIC = "farm/weather/station-1"


def start(workdir: Path) -> Callable[[], None]:
    """Start the simulated soil sensor and weather station; return a function that stops both."""
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    SECRET.write_text("sensor-pass\n")
    log = open(workdir / "sim_sensors.log", "ab")
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={SENSOR_END}", f"pty,raw,echo=0,link={AGENT_END}"],
                             stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 5
    while not (SENSOR_END.exists() and AGENT_END.exists()):
        if time.monotonic() > deadline or socat.poll() is not None:
            _terminate(socat)
            raise RuntimeError("sim_sensors: socat did not create the pty pair")
        time.sleep(0.02)
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"],
                             stdout=log, stderr=log, start_new_session=True)

    def stop() -> None:
        _terminate(child)
        _terminate(socat)
        log.close()

    return stop


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        stop_process(proc)


def _soil_moisture(t: float) -> float:
    """26 % drying to 14 % over half a minute, then flat: crosses the 20 % alarm after ~15 s."""
    return max(14.0, 26.0 - 0.4 * t)


def _serve() -> None:
    started = time.monotonic()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_weather_station, args=(started, stop), daemon=True).start()
    asyncio.run(_soil_sensor(started, stop))


async def _soil_sensor(started: float, stop: threading.Event) -> None:
    from pymodbus.server import ModbusSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def live_values(fc: int, start: int, address: int, count: int, regs: list[int], *_: object) -> None:
        t = time.monotonic() - started
        regs[0] = round(_soil_moisture(t) * 10)  # 0.1 %
        regs[1] = round((27.0 + math.sin(t / 60)) * 10) & 0xFFFF  # 0.1 °C
        return None

    # moisture, temperature, EC µS/cm, pH x10, N, P, K mg/kg
    soil = SimDevice(id=1, simdata=[SimData(0, values=[260, 270, 820, 62, 41, 18, 95], datatype=DataType.REGISTERS)],
                     action=live_values)
    server = ModbusSerialServer([soil], port=str(SENSOR_END), baudrate=9600, reconnect_delay=0.5)
    task = asyncio.create_task(server.serve_forever())
    while not stop.is_set():
        await asyncio.sleep(0.2)
    await server.shutdown()
    task.cancel()


def _weather_station(started: float, stop: threading.Event) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"weather-{os.getpid()}")
    client.username_pw_set("sensor", "sensor-pass")
    client.reconnect_delay_set(1, 5)
    client.connect_async("127.0.0.1", BROKER_PORT, keepalive=30)
    client.loop_start()
    try:
        while not stop.wait(5.0):
            t = time.monotonic() - started
            temp_c = 31.0 + 2.0 * math.sin(t / 120)
            payload = {"station": "station-1", "main": {"temp_f": round(temp_c * 9 / 5 + 32, 1),
                                                        "humidity": round(68 + 5 * math.cos(t / 90))},
                       "wind": {"speed_kmh": round(8 + 4 * abs(math.sin(t / 30)), 1)},
                       "rain": {"last_hour_mm": 0.0}}
            client.publish(WEATHER_TOPIC, json.dumps(payload), qos=1)
    finally:
        client.loop_stop()
        client.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help="run the devices (what start() launches)")
    if parser.parse_args().serve:
        _serve()
