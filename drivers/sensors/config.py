"""The `sensors` section: MQTT, serial line and Modbus RTU sources, alarms and staleness."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from agent.section import SecretFile, Section, check_mqtt_client, repeated
from drivers.sensors.units import can_convert, known_pairs

MAPS_DIR = Path(__file__).with_name("maps")

PayloadFormat = Literal["json", "tasmota", "zigbee2mqtt", "number", "key_value", "csv", "regex"]
LINE_FORMATS = ("json", "number", "key_value", "csv", "regex")
_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"


class FieldMap(Section):
    """How one field of a payload becomes one reading."""

    source: str = Field(min_length=1, description="dotted JSON path, key, CSV column or regex group")
    name: Optional[str] = Field(None, pattern=_NAME, description="reading name (default: source)")
    unit: Optional[str] = Field(None,
                               description="unit of the reading (default: the payload's own unit, if it carries one)")
    from_unit: Optional[str] = Field(None, description="unit the device sends; converted to `unit` (e.g. F to C)")
    scale: float = Field(1.0, description="raw value is multiplied by this (before offset)")
    offset: float = Field(0.0, description="added after scale")

    @model_validator(mode="after")
    def _conversion_known(self) -> FieldMap:
        if self.from_unit and self.unit and not can_convert(self.from_unit, self.unit):
            raise ValueError(f"no conversion from {self.from_unit!r} to {self.unit!r} "
                             f"(known: {', '.join(known_pairs())})")
        return self


class FormatSpec(Section):
    """A payload format plus the options it needs; shared by MQTT topics, serial lines and the CLI."""

    format: PayloadFormat = Field(description="json, tasmota, zigbee2mqtt, number, key_value, csv or regex")
    fields: list[FieldMap] = Field(default_factory=list,
                                  description="payload fields that become readings, and how; empty = every number")
    include_unmapped: Optional[bool] = Field(None, description="also emit fields not in `fields` "
                                                                "(default: only when `fields` is empty)")
    reading: Optional[str] = Field(None, pattern=_NAME, description="a bare number: its reading name "
                                                                    "(default: the last topic segment, or `value`)")
    unit: Optional[str] = Field(None, description="a bare number: its unit")
    columns: list[str] = Field(default_factory=list,
                              description="csv: the column names in order (an empty name skips a column)")
    delimiter: str = Field(",", min_length=1, max_length=1, description="csv: the one-character column separator")
    pattern: Optional[str] = Field(None,
                                  description="regex: a regular expression with named groups, one reading per group")
    pair_separator: Optional[str] = Field(None, description="key_value: between pairs (default: spaces, ',' or ';')")
    kv_separator: str = Field("=", min_length=1, description="key_value: between a key and its value")
    max_payload_bytes: int = Field(65536, ge=16, le=16 * 1024 * 1024,
                                   description="a larger payload is counted as bad and dropped")

    @model_validator(mode="after")
    def _format_options(self) -> FormatSpec:
        if self.format == "csv" and not self.columns:
            raise ValueError("format csv needs `columns` (the column names, in order)")
        if self.format == "regex":
            if not self.pattern:
                raise ValueError("format regex needs `pattern` with named groups, e.g. (?P<temp>[-0-9.]+)")
            try:
                groups = re.compile(self.pattern).groupindex
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
            if not groups:
                raise ValueError("pattern has no named groups: write (?P<name>...)")
        seen: set[str] = set()
        for f in self.fields:
            name = f.name or f.source
            if name in seen:
                raise ValueError(f"two fields produce the reading {name!r}")
            seen.add(name)
        return self

    @property
    def emit_unmapped(self) -> bool:
        return not self.fields if self.include_unmapped is None else self.include_unmapped


class MqttTopic(FormatSpec):
    """One subscription on a local broker and how its payloads are read."""

    filter: str = Field(min_length=1, description="MQTT topic filter, + and # allowed")
    device: Optional[str] = Field(None, description="device name template: {N} = topic segment N (0-based), "
                                                   "{#} = what # matched; default: what the wildcards matched")
    qos: Literal[0, 1, 2] = Field(0, description="MQTT QoS of the subscription")
    stale_after_s: Optional[float] = Field(None, ge=0,
                                           description="silent this long: sensor_stale; default sensors.stale_after_s")

    @field_validator("filter")
    @classmethod
    def _valid_filter(cls, v: str) -> str:
        parts = v.split("/")
        for i, p in enumerate(parts):
            if ("+" in p and p != "+") or ("#" in p and (p != "#" or i != len(parts) - 1)):
                raise ValueError(f"invalid MQTT topic filter {v!r}")
        return v


class MqttSource(Section):
    """A local broker (gateway, Tasmota, Zigbee2MQTT) — never the COC uplink."""

    name: str = Field(pattern=_NAME, description="source name: the `source` tag of its readings and events")
    host: str = Field("127.0.0.1", description="the local broker's address")
    port: int = Field(1883, ge=1, le=65535, description="the local broker's port")
    username: Optional[str] = Field(None, description="login on the local broker")
    password_file: Optional[SecretFile] = Field(None, description="file holding the password for username")
    tls_ca_file: Optional[SecretFile] = Field(None,
                                             description="CA certificate: use TLS and verify the broker against it")
    client_id: Optional[str] = Field(None, description="MQTT client id (default: commune-agent-<site>-sensors-<name>)")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive")
    reconnect_min_s: float = Field(1.0, gt=0, description="first wait before reconnecting to a lost broker")
    reconnect_max_s: float = Field(30.0, gt=0, description="the wait between reconnects grows up to this")
    topics: list[MqttTopic] = Field(min_length=1, description="subscriptions and how their payloads are read")

    @model_validator(mode="after")
    def _checks(self) -> MqttSource:
        check_mqtt_client(self)
        return self


class SerialPort(Section):
    """Port settings shared by line devices and Modbus buses."""

    port: str = Field(min_length=1, description="/dev/ttyUSB0 or, better, /dev/serial/by-id/...")
    baud: int = Field(9600, ge=50, le=4_000_000, description="line speed")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="data bits per character")
    parity: Literal["N", "E", "O", "M", "S"] = Field("N", description="N(one), E(ven), O(dd), M(ark), S(pace)")
    stopbits: Literal[1, 1.5, 2] = Field(1, description="stop bits per character")
    reopen_poll_s: float = Field(0.25, gt=0, le=5, description="how often a vanished port is looked for")


class SerialSource(SerialPort, FormatSpec):
    """A device that prints one reading line at a time on a serial port."""

    name: str = Field(pattern=_NAME, description="source name: the `source` tag of its readings and events")
    device: Optional[str] = Field(None, pattern=_NAME, description="device tag (default: name)")
    max_line_bytes: int = Field(4096, ge=16, le=1024 * 1024,
                                description="a longer line is counted as bad and discarded up to its end")
    stale_after_s: Optional[float] = Field(None, ge=0,
                                           description="silent this long: sensor_stale; default sensors.stale_after_s")

    @field_validator("format")
    @classmethod
    def _line_format(cls, v: str) -> str:
        if v not in LINE_FORMATS:
            raise ValueError(f"serial lines support formats {', '.join(LINE_FORMATS)}")
        return v


class Register(Section):
    """One value in a Modbus register map."""

    name: str = Field(pattern=_NAME, description="reading name")
    address: int = Field(ge=0, le=65535, description="register address (0-based, as on the wire)")
    table: Literal["holding", "input"] = Field("holding",
                                              description="holding (function 3) or input (function 4) registers")
    type: Literal["int16", "uint16", "int32", "uint32", "float32"] = Field(
        "uint16", description="how the registers are decoded; 32-bit types span two")
    word_order: Literal["big", "little"] = Field("big", description="32-bit types: big = high word first")
    scale: float = Field(1.0, description="raw value is multiplied by this (before offset)")
    offset: float = Field(0.0, description="added after scale")
    unit: Optional[str] = Field(None, description="unit of the reading")

    @property
    def width(self) -> int:
        return 1 if self.type.endswith("16") else 2


def load_map(ref: str) -> list[dict[str, Any]]:
    """Registers of a shipped map (by name) or of a YAML file (by path)."""
    import yaml  # PyYAML is a core dependency; imported late to keep this module light

    path = Path(ref) if ("/" in ref or ref.endswith((".yaml", ".yml"))) else MAPS_DIR / f"{ref}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in MAPS_DIR.glob("*.yaml")))
        raise ValueError(f"register map {ref!r} not found (shipped maps: {shipped}; or give a .yaml path)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"register map {path}: cannot read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("registers"), list):
        raise ValueError(f"register map {path}: needs a `registers:` list")
    return data["registers"]


class ModbusDevice(Section):
    """One unit on a Modbus RTU bus."""

    name: str = Field(pattern=_NAME, description="device name: the `device` tag of its readings")
    unit_id: int = Field(ge=1, le=247, description="Modbus slave address on the bus")
    map: Optional[str] = Field(None, description="shipped map name (e.g. soil_7in1) or path to a YAML map")
    registers: list[Register] = Field(default_factory=list,
                                     description="the register map written out here (or use `map`)")
    interval_s: float = Field(10.0, ge=0, description="poll period; 0 = as often as the bus allows")
    timeout_s: float = Field(0.5, gt=0, le=10, description="no answer within this counts as silent")
    retries: int = Field(1, ge=0, le=5, description="extra tries of a silent read before the poll counts as failed")
    offline_after: int = Field(3, ge=1, description="failed polls in a row before the unit counts as offline")
    offline_poll_s: float = Field(30.0, ge=0, description="while offline, poll only this often (no retries)")
    max_gap: int = Field(0, ge=0, le=32, description="merge reads across gaps of up to this many registers")
    stale_after_s: Optional[float] = Field(None, ge=0,
                                           description="silent this long: sensor_stale; default sensors.stale_after_s")

    @model_validator(mode="before")
    @classmethod
    def _resolve_map(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("map"):
            if data.get("registers"):
                raise ValueError("give either `map` or `registers`, not both")
            data = {**data, "registers": load_map(str(data["map"]))}
        return data

    @model_validator(mode="after")
    def _has_registers(self) -> ModbusDevice:
        if not self.registers:
            raise ValueError("a device needs `map` or `registers`")
        if repeated(r.name for r in self.registers):
            raise ValueError("register names must be unique within a device")
        return self


class ModbusBus(SerialPort):
    """One RS485 bus (one serial port) shared by several units."""

    name: str = Field(pattern=_NAME, description="source name: the `source` tag of its readings and events")
    devices: list[ModbusDevice] = Field(min_length=1, description="the units on this bus")

    @model_validator(mode="after")
    def _unique_units(self) -> ModbusBus:
        if repeated(d.unit_id for d in self.devices):
            raise ValueError("two devices share a unit_id on one bus")
        if repeated(d.name for d in self.devices):
            raise ValueError("device names must be unique within a bus")
        return self


class AlarmRule(Section):
    """A threshold on readings; raised after min_duration_s, cleared past the hysteresis band."""

    name: Optional[str] = Field(None, pattern=_NAME, description="rule name in events (default: reading@device)")
    reading: str = Field(min_length=1, description="reading name; shell-style wildcards allowed")
    device: Optional[str] = Field(None, description="device tag; wildcards allowed (default: any)")
    low: Optional[float] = Field(None, description="alarm when the value stays below this")
    high: Optional[float] = Field(None, description="alarm when the value stays above this")
    hysteresis: float = Field(0.0, ge=0, description="cleared only once the value is this far back inside the limit")
    min_duration_s: float = Field(0.0, ge=0,
                                  description="the value stays beyond the limit this long before the alarm is raised")
    severity: Literal["warning", "critical"] = Field("warning", description="severity of the sensor_alarm event")

    @model_validator(mode="after")
    def _thresholds(self) -> AlarmRule:
        if self.low is None and self.high is None:
            raise ValueError("an alarm needs `low`, `high` or both")
        if self.low is not None and self.high is not None and self.low + self.hysteresis >= self.high:
            raise ValueError("low + hysteresis must be below high")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.reading}{'@' + self.device if self.device else ''}"


class SensorsConfig(Section):
    """Farm sensors over local MQTT, serial lines and Modbus RTU, with alarms and staleness."""

    flush_interval_s: float = Field(0.5, gt=0, le=60, description="how often collected readings are emitted")
    max_batch: int = Field(2000, ge=10, le=100_000, description="readings per telemetry message at most")
    max_buffered: int = Field(200_000, ge=1000, description="readings held while the spool is slow; oldest dropped")
    stale_after_s: float = Field(600.0, ge=0, description="default: no data this long -> sensor_stale (0 = off)")
    mqtt: list[MqttSource] = Field(default_factory=list, description="local MQTT brokers to subscribe to")
    serial: list[SerialSource] = Field(default_factory=list, description="serial line devices")
    modbus: list[ModbusBus] = Field(default_factory=list, description="Modbus RTU buses")
    alarms: list[AlarmRule] = Field(default_factory=list, description="threshold alarms on readings")

    @model_validator(mode="after")
    def _unique_sources(self) -> SensorsConfig:
        dupes = repeated(s.name for s in (*self.mqtt, *self.serial, *self.modbus))
        if dupes:
            raise ValueError(f"source names must be unique: {', '.join(dupes)}")
        dupes = repeated(s.port for s in (*self.serial, *self.modbus))
        if dupes:
            raise ValueError(f"a serial port can serve one source only: {', '.join(dupes)}")
        return self
