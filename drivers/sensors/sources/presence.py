"""Whether a serial port's device node is there: unplug and replug become one event each."""

from __future__ import annotations

import os
import threading

from agent.driver import Event
from agent.logs import KvLogger
from drivers.sensors.ingest import Ingest


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
