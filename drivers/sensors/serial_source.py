"""A serial device printing text lines; survives unplug/replug by watching its path."""

from __future__ import annotations

import os
import threading

import serial

from agent.driver import Event
from agent.logs import KvLogger
from drivers.sensors.config import SerialPort, SerialSource
from drivers.sensors.formats import Decoder
from drivers.sensors.ingest import Ingest, RateLimitedLog, ingest_payload
from drivers.sensors.worker import SourceThread

OPEN_BACKOFF_MAX_S = 1.0


def open_port(cfg: SerialPort, timeout: float) -> serial.Serial:
    """Open by path (a /dev/serial/by-id link is resolved at each open, so it follows re-enumeration)."""
    return serial.Serial(cfg.port, baudrate=cfg.baud, bytesize=cfg.bytesize, parity=cfg.parity,
                         stopbits=cfg.stopbits, timeout=timeout, exclusive=True)


class PortPresence:
    """Tracks whether a port is there and turns loss/return into one event each."""

    def __init__(self, source: str, kind: str, port: str, ingest: Ingest, log: KvLogger) -> None:
        self.source, self.kind, self.port = source, kind, port
        self.ingest, self.log = ingest, log
        self.lost = False

    def wait_present(self, poll_s: float, stop: threading.Event) -> bool:
        """Block until the path exists (True) or stop is set (False); a stat per poll costs nothing."""
        while not stop.is_set():
            if os.path.exists(self.port):
                return True
            self.ingest.set_status(self.source, False, f"port {self.port} missing")
            stop.wait(poll_s)
        return False

    def opened(self) -> None:
        self.ingest.set_status(self.source, True)
        self.log.info("port_open", port=self.port)
        if self.lost:
            self.lost = False
            self.ingest.event(Event("sensor_source_back", {"source": self.source, "kind": self.kind,
                                                           "port": self.port}))

    def failed(self, reason: str) -> None:
        self.ingest.set_status(self.source, False, reason)
        if not self.lost:
            self.lost = True
            self.log.warning("port_lost", port=self.port, reason=reason)
            self.ingest.event(Event("sensor_source_lost", {"source": self.source, "kind": self.kind,
                                                           "port": self.port, "reason": reason},
                                    severity="warning"))


class SerialLineSource(SourceThread):
    """Reads lines in its own thread; each line is one payload for the configured format."""

    def __init__(self, cfg: SerialSource, ingest: Ingest, log: KvLogger, default_stale_s: float) -> None:
        super().__init__(f"sensors-serial-{cfg.name}")
        self.cfg = cfg
        self.ingest = ingest
        self.log = log.child(cfg.name)
        self.badlog = RateLimitedLog(self.log)
        self.decoder = Decoder(cfg)
        self.device = cfg.device or cfg.name
        self.stale_s = cfg.stale_after_s if cfg.stale_after_s is not None else default_stale_s
        self.presence = PortPresence(cfg.name, "serial", cfg.port, ingest, self.log)
        ingest.set_status(cfg.name, False, "opening")

    def _run(self) -> None:
        backoff = 0.0
        while self.presence.wait_present(self.cfg.reopen_poll_s, self._stop):
            try:
                port = open_port(self.cfg, timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.presence.failed(f"cannot open: {exc}")
                backoff = min(OPEN_BACKOFF_MAX_S, max(self.cfg.reopen_poll_s, backoff * 2))
                self._stop.wait(backoff)
                continue
            backoff = 0.0
            self.presence.opened()
            try:
                self._read_lines(port)
            except (serial.SerialException, OSError) as exc:
                self.presence.failed(f"read failed: {exc}")
            finally:
                try:
                    port.close()
                except (serial.SerialException, OSError):
                    pass

    def _read_lines(self, port: serial.Serial) -> None:
        buf = bytearray()
        discarding = False
        limit = self.cfg.max_line_bytes
        while not self._stop.is_set():
            chunk = port.read(port.in_waiting or 1)
            if not chunk:
                continue
            buf += chunk
            while (i := buf.find(b"\n")) >= 0:
                line = bytes(buf[:i]).rstrip(b"\r")
                del buf[:i + 1]
                if discarding:
                    discarding = False
                elif line.strip():
                    ingest_payload(self.ingest, self.badlog, self.decoder, line, source=self.cfg.name,
                                   device=self.device, stale_after_s=self.stale_s)
            if len(buf) > limit:
                self.ingest.count("bad_payload")
                self.badlog.warning("bad_payload", key="long", source=self.cfg.name, where=self.cfg.port,
                                    reason=f"line longer than max_line_bytes={limit}")
                buf.clear()
                discarding = True
