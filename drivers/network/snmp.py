"""SNMP polling of network gear (pysnmp 7, asyncio): uptime/reboots, names, IF-MIB rates and link status.

Numeric OIDs only (IF-MIB is not bundled with pysnmp). Rates come from the 64-bit ifXTable octet
counters and the 32-bit ifTable error/discard counters, with wrap handling for 32-bit counters and a
fresh baseline after a device restart (sysUpTime went backwards) or a counter discontinuity.
An unreachable device is reported (event + snmp_up=0) and retried; it never stops the driver.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as snmp_auth

from agent.driver import Context, Event, Reading
from agent.section import read_secret
from drivers.network.config import SnmpDevice

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_IN_DISCARDS = "1.3.6.1.2.1.2.2.1.13"
IF_IN_ERRORS = "1.3.6.1.2.1.2.2.1.14"
IF_OUT_DISCARDS = "1.3.6.1.2.1.2.2.1.19"
IF_OUT_ERRORS = "1.3.6.1.2.1.2.2.1.20"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"

# column -> (reading name, counter bits, multiplier to the reported unit)
RATES: dict[str, tuple[str, int, float]] = {
    IF_HC_IN_OCTETS: ("if_in_bps", 64, 8.0),
    IF_HC_OUT_OCTETS: ("if_out_bps", 64, 8.0),
    IF_IN_ERRORS: ("if_in_errors_ps", 32, 1.0),
    IF_OUT_ERRORS: ("if_out_errors_ps", 32, 1.0),
    IF_IN_DISCARDS: ("if_in_discards_ps", 32, 1.0),
    IF_OUT_DISCARDS: ("if_out_discards_ps", 32, 1.0),
}
OPER_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
UPTIME_WRAP = 2**32  # sysUpTime is TimeTicks (1/100 s), wraps after ~497 days

AUTH = {"md5": snmp_auth.USM_AUTH_HMAC96_MD5, "sha": snmp_auth.USM_AUTH_HMAC96_SHA,
        "sha224": snmp_auth.USM_AUTH_HMAC128_SHA224, "sha256": snmp_auth.USM_AUTH_HMAC192_SHA256,
        "sha384": snmp_auth.USM_AUTH_HMAC256_SHA384, "sha512": snmp_auth.USM_AUTH_HMAC384_SHA512}
PRIV = {"des": snmp_auth.USM_PRIV_CBC56_DES, "3des": snmp_auth.USM_PRIV_CBC168_3DES,
        "aes": snmp_auth.USM_PRIV_CFB128_AES, "aes192": snmp_auth.USM_PRIV_CFB192_AES,
        "aes256": snmp_auth.USM_PRIV_CFB256_AES}


class SnmpUnreachable(Exception):
    """No usable answer from the device (timeout, auth failure, SNMP error)."""


def counter_delta(old: int, new: int, bits: int) -> int | None:
    """Increase of a counter between two polls; None when it cannot be known (a reset, not a wrap).

    A 64-bit counter never wraps in practice, so going backwards means it was reset. A 32-bit one
    wraps; a "wrap" of more than half the range is far likelier a reset and is refused too.
    """
    if new >= old:
        return new - old
    if bits == 64:
        return None
    wrapped = new + 2**bits - old
    return wrapped if wrapped < 2 ** (bits - 1) else None


def rebooted(old_ticks: int, new_ticks: int, elapsed_s: float) -> bool:
    """sysUpTime went backwards, and not merely by wrapping around 2^32 ticks."""
    if new_ticks >= old_ticks:
        return False
    expected_after_wrap = old_ticks + int(elapsed_s * 100) - UPTIME_WRAP
    return abs(new_ticks - expected_after_wrap) > 6000  # more than 60 s off: not a wrap


@dataclass
class DevicePoll:
    """One poll's answers."""

    uptime_ticks: int
    sys_name: str
    sys_descr: str
    columns: dict[str, dict[int, Any]] = field(default_factory=dict)


class SnmpPoller:
    """Polls one device every interval_s and turns counters into rates and changes into events."""

    def __init__(self, ctx: Context, device: SnmpDevice) -> None:
        self.ctx = ctx
        self.dev = device
        self.log = ctx.log.child(f"snmp.{device.name}")
        self.reachable: bool | None = None
        self.last: DevicePoll | None = None
        self.last_at = 0.0
        self.oper: dict[int, int] = {}

    def _auth(self) -> CommunityData | UsmUserData:
        d = self.dev
        if d.version == "2c":
            community = d.community if d.community is not None else read_secret(d.community_file)
            return CommunityData(community, mpModel=1)
        return UsmUserData(d.user, authKey=read_secret(d.auth_key_file), privKey=read_secret(d.priv_key_file),
                           authProtocol=AUTH[d.auth_protocol], privProtocol=PRIV[d.priv_protocol])

    async def run(self) -> None:
        engine = SnmpEngine()
        auth = self._auth()
        try:
            while True:
                started = time.monotonic()
                try:
                    target = await UdpTransportTarget.create((self.dev.host, self.dev.port),
                                                             timeout=self.dev.timeout_s, retries=self.dev.retries)
                    poll = await self._poll(engine, auth, target)
                except SnmpUnreachable as exc:
                    await self._unreachable(str(exc))
                except Exception as exc:  # noqa: BLE001 - pysnmp raises assorted errors (resolve, decode)
                    await self._unreachable(f"{type(exc).__name__}: {exc}")
                else:
                    await self._process(poll, started)
                await asyncio.sleep(max(0.0, self.dev.interval_s - (time.monotonic() - started)))
        finally:
            engine.close_dispatcher()

    async def _poll(self, engine: SnmpEngine, auth: Any, target: UdpTransportTarget) -> DevicePoll:
        err, status, _, binds = await get_cmd(engine, auth, target, ContextData(),
                                              *(ObjectType(ObjectIdentity(o)) for o in (SYS_UPTIME, SYS_NAME,
                                                                                        SYS_DESCR)),
                                              lookupMib=False)
        if err or status:
            raise SnmpUnreachable(str(err or status.prettyPrint()))
        values = [v for _, v in binds]
        poll = DevicePoll(int(values[0]), _text(values[1]), _text(values[2]))
        for column in (IF_NAME, IF_DESCR, IF_OPER_STATUS, *RATES):
            poll.columns[column] = await self._walk(engine, auth, target, column)
        return poll

    async def _walk(self, engine: SnmpEngine, auth: Any, target: UdpTransportTarget, column: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        prefix = tuple(int(x) for x in column.split("."))
        async for err, status, _, binds in bulk_walk_cmd(engine, auth, target, ContextData(), 0, 25,
                                                         ObjectType(ObjectIdentity(column)),
                                                         lexicographicMode=False, lookupMib=False):
            if err or status:
                raise SnmpUnreachable(str(err or status.prettyPrint()))
            for oid, value in binds:
                parts = tuple(oid)
                if parts[:len(prefix)] != prefix or len(parts) != len(prefix) + 1:
                    continue
                out[parts[-1]] = value
        return out

    async def _unreachable(self, reason: str) -> None:
        self.ctx.count("snmp_unreachable")
        items: list[Any] = [Reading("snmp_up", 0, tags={"device": self.dev.name})]
        if self.reachable is not False:
            self.log.warning("snmp_device_down", host=self.dev.host, reason=reason)
            items.append(Event("snmp_device_down", {"device": self.dev.name, "host": self.dev.host,
                                                    "reason": reason}, severity="warning"))
        self.reachable = False
        await self.ctx.emit(*items)

    def _ifname(self, poll: DevicePoll, index: int) -> str:
        name = poll.columns[IF_NAME].get(index) or poll.columns[IF_DESCR].get(index)
        return _text(name) if name is not None else f"if{index}"

    async def _process(self, poll: DevicePoll, at: float) -> None:
        dev = self.dev.name
        items: list[Any] = []
        if self.reachable is not True:
            self.log.info("snmp_device_up", host=self.dev.host, sys_name=poll.sys_name)
            if self.reachable is False:
                items.append(Event("snmp_device_up", {"device": dev, "host": self.dev.host,
                                                      "sys_name": poll.sys_name}))
        self.reachable = True
        prev, elapsed = self.last, at - self.last_at
        fresh_baseline = prev is None
        if prev is not None and rebooted(prev.uptime_ticks, poll.uptime_ticks, elapsed):
            fresh_baseline = True
            self.log.warning("device_rebooted", device=dev, uptime_s=poll.uptime_ticks / 100)
            items.append(Event("device_rebooted", {"device": dev, "sys_name": poll.sys_name,
                                                   "uptime_s": poll.uptime_ticks / 100,
                                                   "previous_uptime_s": prev.uptime_ticks / 100},
                               severity="warning"))
        if prev is None or (prev.sys_name, prev.sys_descr) != (poll.sys_name, poll.sys_descr):
            items += [Reading("snmp_sys_name", poll.sys_name, tags={"device": dev}),
                      Reading("snmp_sys_descr", poll.sys_descr[:300], tags={"device": dev})]
        items += [Reading("snmp_up", 1, tags={"device": dev}),
                  Reading("snmp_uptime_s", poll.uptime_ticks / 100, "s", tags={"device": dev})]
        wanted = set(self.dev.interfaces)
        for index, status in sorted(poll.columns[IF_OPER_STATUS].items()):
            name = self._ifname(poll, index)
            if wanted and name not in wanted:
                continue
            tags = {"device": dev, "if": name}
            status = int(status)
            items.append(Reading("if_oper_up", int(status == 1), tags=tags))
            before = self.oper.get(index)
            if before is not None and before != status and not fresh_baseline:
                self.log.info("if_oper_status", device=dev, interface=name, status=OPER_STATUS.get(status, status))
                items.append(Event("if_oper_status", {"device": dev, "if": name,
                                                      "from": OPER_STATUS.get(before, str(before)),
                                                      "to": OPER_STATUS.get(status, str(status))},
                                   severity="warning" if status != 1 else "info"))
            self.oper[index] = status
            if fresh_baseline or prev is None or elapsed <= 0:
                continue
            for column, (reading, bits, scale) in RATES.items():
                new, old = poll.columns[column].get(index), prev.columns[column].get(index)
                if new is None or old is None:
                    continue
                delta = counter_delta(int(old), int(new), bits)
                if delta is None:
                    self.ctx.count("snmp_counter_reset")
                    continue
                unit = "bit/s" if scale == 8.0 else "1/s"
                items.append(Reading(reading, round(delta * scale / elapsed, 3), unit, tags=tags))
        self.last, self.last_at = poll, at
        await self.ctx.emit(*items)


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        return bytes(value).decode("utf-8", errors="replace")
    except TypeError:
        return str(value)
