"""A serial device printing text lines; survives unplug/replug by watching its path."""

from __future__ import annotations

import serial

from agent.backoff import Backoff
from agent.logs import KvLogger
from drivers.sensors.config import SerialPort, SerialSource
from drivers.sensors.formats import Decoder
from drivers.sensors.ingest import Ingest, RateLimitedLog, ingest_payload
from drivers.sensors.sources.presence import PortPresence
from drivers.sensors.sources.thread import SourceThread

OPEN_BACKOFF_MAX_S = 1.0


def open_port(cfg: SerialPort, timeout: float) -> serial.Serial:
    """Open by path (a /dev/serial/by-id link is resolved at each open, so it follows re-enumeration)."""
    return serial.Serial(cfg.port, baudrate=cfg.baud, bytesize=cfg.bytesize, parity=cfg.parity,
                         stopbits=cfg.stopbits, timeout=timeout, exclusive=True)


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
        # a port that is there but will not open (busy, permissions) is retried quickly, then once a second
        backoff = Backoff(min(self.cfg.reopen_poll_s, OPEN_BACKOFF_MAX_S), OPEN_BACKOFF_MAX_S)
        while self.presence.wait_present(self.cfg.reopen_poll_s, self._stop):
            try:
                port = open_port(self.cfg, timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.presence.failed(f"cannot open: {exc}")
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
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
