"""Simulated serial hardware for the sensors tests: socat pty pairs and a pymodbus RTU server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable

from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.support.procs import stop_process
from tests.support.wait import wait_until

SOCAT = shutil.which("socat") or "/usr/bin/socat"
SOIL_VALUES = [455, (-25) & 0xFFFF, 1200, 65, 30, 20, 100]  # 45.5 %, -2.5 °C, 1200 µS/cm, pH 6.5, N P K


class PtyPair:
    """socat linking two ptys at fixed paths; stop() is an unplug, start() a replug."""

    def __init__(self, device_end: Path, host_end: Path) -> None:
        self.device_end, self.host_end = device_end, host_end
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PtyPair:
        self.proc = subprocess.Popen([SOCAT, f"pty,raw,echo=0,link={self.device_end}",
                                      f"pty,raw,echo=0,link={self.host_end}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: self.device_end.exists() and self.host_end.exists(), timeout=5, what="socat ptys")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc)
        self.proc = None
        wait_until(lambda: not self.host_end.exists(), timeout=5, what="pty links gone")


class LineDevice:
    """A device on the far end of a pty that prints one line every period."""

    def __init__(self, path: Path, make_line: Callable[[int], bytes], period: float = 0.05) -> None:
        self.path, self.make_line, self.period = path, make_line, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.written = 0

    def start(self) -> LineDevice:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY)
            except OSError:
                self._stop.wait(0.05)
                continue
            try:
                while not self._stop.is_set():
                    os.write(fd, self.make_line(n))
                    n += 1
                    self.written = n
                    self._stop.wait(self.period)
            except OSError:
                pass
            finally:
                os.close(fd)


class RtuServer:
    """pymodbus RTU server (SimDevice) in its own thread; `silent` and unknown unit ids get no answer at all."""

    def __init__(self, port: Path, devices: dict[int, list[int]], silent: tuple[int, ...] = (),
                 delay_s: float = 0.0) -> None:
        self.port = port
        self.silent = set(silent)
        self.answering = set(devices)
        self.delay_s = delay_s
        action = self._delay if delay_s else None
        ids = sorted(set(devices) | set(silent))
        self.devices = [SimDevice(id=u, simdata=[SimData(0, values=list(devices.get(u, [0])),
                                                         datatype=DataType.REGISTERS)], action=action)
                        for u in ids]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    async def _delay(self, *args: object) -> None:
        await asyncio.sleep(self.delay_s)
        return None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending and data and (data[0] in self.silent or data[0] not in self.answering):
            return b""  # a unit that is not there (or is dead) sends nothing at all
        return data

    def start(self) -> RtuServer:
        logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)
        self._thread.start()
        self._ready.wait(5)
        return self

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = ModbusSerialServer(self.devices, port=str(self.port), baudrate=9600,
                                          trace_packet=self._trace, reconnect_delay=0.1)
        # ready once the port is open: a request sent before that is lost and looks like a silent unit
        await self._server.serve_forever(background=True)
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serving

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:
                pass
        self._thread.join(5)
