"""Modbus RTU polling on a shared RS485 bus: coalesced reads, bus-paced, silent units cost little."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from agent.driver import Event, Reading
from agent.logs import KvLogger
from drivers.sensors.config import ModbusBus, ModbusDevice
from drivers.sensors.ingest import Batch, Ingest, RateLimitedLog
from drivers.sensors.modbus_rtu import (
    ReadBlock,
    char_bits,
    decode_block,
    gap_s,
    make_client,
    plan_reads,
    read_block,
    read_wire_s,
)
from drivers.sensors.sources.presence import PortPresence
from drivers.sensors.sources.thread import SourceThread


@dataclass
class _Unit:
    cfg: ModbusDevice
    blocks: list[ReadBlock]
    stale_s: float
    next_due: float = 0.0
    failures: int = 0
    offline: bool = False
    problem: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class ModbusBusPoller(SourceThread):
    """One thread per bus owns the port; units are polled in due order, one transaction at a time."""

    def __init__(self, cfg: ModbusBus, ingest: Ingest, log: KvLogger, default_stale_s: float) -> None:
        super().__init__(f"sensors-modbus-{cfg.name}")
        self.cfg = cfg
        self.ingest = ingest
        self.log = log.child(cfg.name)
        self.badlog = RateLimitedLog(self.log, 30.0)
        self.bits = char_bits(cfg.bytesize, cfg.parity, cfg.stopbits)
        self.gap = gap_s(cfg.baud, self.bits)
        self.units = [
            _Unit(d, plan_reads(list(d.registers), d.max_gap),
                  d.stale_after_s if d.stale_after_s is not None else default_stale_s,
                  tags={"source": cfg.name, "device": d.name, "unit_id": str(d.unit_id)})
            for d in cfg.devices
        ]
        self.presence = PortPresence(cfg.name, "modbus", cfg.port, ingest, self.log)
        self.client = make_client(cfg, max(d.timeout_s for d in cfg.devices))
        self._last_io = 0.0
        ingest.set_status(cfg.name, False, "opening")
        # pymodbus logs every timeout at ERROR; this poller reports them itself, rate-limited
        logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)

    def stop(self) -> None:
        super().stop()
        self.client.close()

    def cycle_wire_s(self) -> float:
        """What one poll of every unit costs on the wire, without timeouts."""
        return sum(read_wire_s(b.count, self.cfg.baud, self.bits) for u in self.units for b in u.blocks)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._ensure_open():
                continue
            now = time.monotonic()
            due = sorted((u for u in self.units if u.next_due <= now), key=lambda u: u.next_due)
            if not due:
                # idle: look at the port path meanwhile, so an unplug is reported now, not at the next poll
                self._stop.wait(min(min(u.next_due for u in self.units) - now, self.cfg.reopen_poll_s))
                if not os.path.exists(self.cfg.port):
                    self.client.close()
                    self.presence.failed(f"port {self.cfg.port} missing")
                continue
            for unit in due:
                if self._stop.is_set():
                    return
                if not self._poll(unit):
                    break  # the port went away: stop this round, reopen first

    def _ensure_open(self) -> bool:
        if self.client.connected:
            return True
        if not self.presence.wait_present(self.cfg.reopen_poll_s, self._stop):
            return False
        if self.client.connect():
            self.presence.opened()
            self._last_io = time.monotonic()
            return True
        self.presence.failed(f"cannot open {self.cfg.port}")
        self._stop.wait(self.cfg.reopen_poll_s)
        return False

    def _pace(self) -> None:
        """Keep the 3.5-character silence between the last frame and the next request."""
        wait = self._last_io + self.gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _poll(self, unit: _Unit) -> bool:
        """Read every block of one unit; False only if the port itself failed."""
        started = time.monotonic()
        attempts = 1 if unit.offline else 1 + unit.cfg.retries
        readings: list[Reading] = []
        problems: list[str] = []
        answered = False
        for block in unit.blocks:
            outcome, detail = self._read(unit, block, attempts, readings)
            if outcome == "port":
                return False
            if outcome != "silent":
                answered = True
            if outcome != "ok":
                problems.append(detail)
            if outcome == "silent":
                break  # don't spend a timeout on each of a silent unit's other blocks
        self._schedule(unit, started)
        if readings:
            self.ingest.put(Batch(self.cfg.name, unit.cfg.name, readings, unit.stale_s))
        self._account(unit, "; ".join(problems) or None, answered)
        return True

    def _read(self, unit: _Unit, block: ReadBlock, attempts: int, out: list[Reading]) -> tuple[str, str]:
        """One block with retries on silence: ("ok"|"error"|"silent"|"port", detail)."""
        detail = ""
        for attempt in range(attempts):
            self._pace()
            try:
                resp = read_block(self.client, block, unit.cfg.unit_id, unit.cfg.timeout_s)
            except ModbusIOException:
                detail = f"no answer within {unit.cfg.timeout_s}s"
                self.ingest.count("modbus_timeout")
                continue
            except ConnectionException as exc:
                self.client.close()
                self.presence.failed(f"port error: {exc}")
                return "port", str(exc)
            except ModbusException as exc:
                detail = f"modbus error: {exc}"
                self.ingest.count("modbus_error")
                continue
            finally:
                self._last_io = time.monotonic()
            if resp.isError():
                self.ingest.count("modbus_exception")
                return "error", (f"exception code {getattr(resp, 'exception_code', '?')} reading "
                                 f"{block.table} {block.address}+{block.count}")
            if len(resp.registers) < block.count:
                self.ingest.count("modbus_error")
                return "error", f"short answer: {len(resp.registers)} of {block.count} registers"
            ts = time.time()
            for reg, value in decode_block(block, resp.registers):
                out.append(Reading(reg.name, value, reg.unit, ts, dict(unit.tags)))
            if attempt:
                self.ingest.count("modbus_retry_ok")
            return "ok", ""
        return "silent", detail

    def _schedule(self, unit: _Unit, started: float) -> None:
        period = unit.cfg.offline_poll_s if unit.offline else unit.cfg.interval_s
        nxt = (unit.next_due or started) + period
        unit.next_due = nxt if nxt > started else started + period

    def _account(self, unit: _Unit, problem: str | None, answered: bool) -> None:
        name = unit.cfg.name
        data = {"source": self.cfg.name, "device": name, "unit_id": unit.cfg.unit_id}
        if answered and unit.offline:
            unit.offline = False
            self.log.info("modbus_unit_online", device=name, unit_id=unit.cfg.unit_id)
            self.ingest.event(Event("sensor_device_online", data))
        if problem is None:
            unit.failures = 0
            if unit.problem is not None:
                self.ingest.set_device(self.cfg.name, name, None)
                unit.problem = None
            return
        unit.failures = unit.failures + 1 if not answered else 0
        unit.problem = problem
        self.ingest.set_device(self.cfg.name, name, problem)
        self.badlog.warning("modbus_poll_failed", key=name, device=name, unit_id=unit.cfg.unit_id, reason=problem)
        if not unit.offline and unit.failures >= unit.cfg.offline_after:
            unit.offline = True
            unit.next_due = time.monotonic() + unit.cfg.offline_poll_s
            self.log.warning("modbus_unit_offline", device=name, unit_id=unit.cfg.unit_id, reason=problem)
            self.ingest.event(Event("sensor_device_offline", {**data, "reason": problem}, severity="warning"))
