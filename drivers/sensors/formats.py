"""Payload decoders: bytes from a topic or a serial line in, (name, value, unit) tuples out."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from drivers.sensors.config import FieldMap, FormatSpec
from drivers.sensors.units import canonical, converter

Value = float | int | bool
Decoded = tuple[str, Value, str | None]

# Units implied by well-known keys of Tasmota and Zigbee2MQTT payloads.
_TASMOTA_UNITS = {
    "Humidity": "%", "Pressure": "hPa", "SeaPressure": "hPa", "Illuminance": "lx", "CO2": "ppm", "eCO2": "ppm",
    "TVOC": "ppb", "Moisture": "%", "Voltage": "V", "Current": "A", "Power": "W", "ApparentPower": "VA",
    "ReactivePower": "var", "Factor": None, "Total": "kWh", "Today": "kWh", "Yesterday": "kWh", "Distance": "cm",
    "PM2.5": "µg/m³", "PM10": "µg/m³", "PM1": "µg/m³", "Frequency": "Hz", "UvIndex": None,
}
_TASMOTA_TEMPS = {"Temperature", "DewPoint", "Temp"}
_TASMOTA_SKIP = {"Time", "TempUnit", "PressureUnit", "SpeedUnit", "Id", "Epoch"}
_Z2M_UNITS = {
    "temperature": "°C", "device_temperature": "°C", "local_temperature": "°C", "humidity": "%",
    "soil_moisture": "%", "pressure": "hPa", "battery": "%", "voltage": "mV", "linkquality": "lqi",
    "illuminance": "lx", "illuminance_lux": "lx", "co2": "ppm", "power": "W", "energy": "kWh", "current": "A",
    "pm25": "µg/m³", "pm10": "µg/m³", "voc": "ppb", "formaldehyd": "mg/m³", "rain_rate": "mm/h",
}
_Z2M_SKIP = {"last_seen", "update", "update_available", "elapsed", "color", "color_mode", "action_group"}
_Z2M_SIDE_TOPICS = ("set", "get", "availability")
_KV_SPLIT = re.compile(r"[\s,;]+")


class DecodeError(ValueError):
    """The payload as a whole cannot be read (not JSON, wrong shape, too big, ...)."""


@dataclass(slots=True)
class Result:
    """Readings of one payload plus problems with single fields (which do not spoil the rest)."""

    readings: list[Decoded]
    problems: list[str]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, too many digits, NaN
        raise DecodeError(f"invalid JSON: {str(exc)[:120]}") from None


def _number(value: Any) -> Value | None:
    """A finite number (or bool) from a JSON value or text; None if it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and 0 < len(value) <= 40:
        try:
            f = float(value)
        except ValueError:
            return None
        if not math.isfinite(f):
            return None
        return int(f) if f.is_integer() and re.fullmatch(r"\s*[-+]?\d+\s*", value) else f
    return None


def _flatten(obj: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Leaves of nested JSON as (dotted path, value); bounded so hostile nesting costs little."""
    if depth > 8:
        return
    items: Any = obj.items() if isinstance(obj, dict) else enumerate(obj[:64]) if isinstance(obj, list) else ()
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, (dict, list)):
            yield from _flatten(v, key + ".", depth + 1)
        else:
            yield key, v


def _dig(obj: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path (list indexes are numbers); (found, value)."""
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


class Decoder:
    """Built once per topic/port from its FormatSpec; decode() runs per message."""

    def __init__(self, spec: FormatSpec) -> None:
        self.spec = spec
        self._fields = {f.source: f for f in spec.fields}
        self._regex = re.compile(spec.pattern) if spec.pattern else None
        self._parse: Callable[[bytes, str], list[tuple[str, Any, str | None]]] = {
            "json": self._json, "tasmota": self._tasmota, "zigbee2mqtt": self._zigbee2mqtt,
            "number": self._plain_number, "key_value": self._key_value, "csv": self._csv, "regex": self._regex_line,
        }[spec.format]

    def decode(self, payload: bytes, topic: str = "") -> Result:
        if len(payload) > self.spec.max_payload_bytes:
            raise DecodeError(f"payload of {len(payload)} bytes exceeds max_payload_bytes")
        raw = self._parse(payload, topic)
        return self._map(raw)

    # -- mapping: raw (source, value, inherent unit) -> readings ------------------------------------------

    def _map(self, raw: list[tuple[str, Any, str | None]]) -> Result:
        out: list[Decoded] = []
        problems: list[str] = []
        found: set[str] = set()
        for source, value, unit in raw:
            fm = self._fields.get(source)
            if fm is None:
                if self.spec.emit_unmapped:
                    num = _number(value)
                    if num is not None:
                        out.append((source, num, unit))
                continue
            found.add(source)
            reading = self._apply(fm, value, unit)
            if isinstance(reading, str):
                problems.append(reading)
            else:
                out.append(reading)
        for source in self._fields.keys() - found:
            problems.append(f"field {source!r} missing")
        return Result(out, problems)

    @staticmethod
    def _apply(fm: FieldMap, value: Any, unit: str | None) -> Decoded | str:
        num = _number(value)
        name = fm.name or fm.source
        if num is None:
            return f"field {fm.source!r}: {type(value).__name__} value is not a finite number"
        if isinstance(num, bool):
            return name, num, fm.unit
        src_unit = canonical(fm.from_unit or unit)
        dst_unit = canonical(fm.unit) or src_unit
        v: float | int = num
        if fm.scale != 1.0 or fm.offset != 0.0:
            v = num * fm.scale + fm.offset
        conv = converter(src_unit, dst_unit)
        if conv is not None:
            v = conv(float(v))
        elif src_unit and dst_unit and src_unit != dst_unit:
            return f"field {fm.source!r}: no conversion from {src_unit} to {dst_unit}"
        if isinstance(v, float):
            if not math.isfinite(v):
                return f"field {fm.source!r}: result is not finite"
            v = round(v, 6)
        return name, v, dst_unit

    # -- formats ------------------------------------------------------------------------------------------

    def _json(self, payload: bytes, topic: str) -> list[tuple[str, Any, str | None]]:
        data = _loads(payload)
        if isinstance(data, (dict, list)):
            if self.spec.emit_unmapped:
                return [(k, v, None) for k, v in _flatten(data)]
            out = []
            for source in self._fields:
                ok, v = _dig(data, source)
                if ok:
                    out.append((source, v, None))
            return out
        if self._fields and not self.spec.emit_unmapped:
            raise DecodeError(f"expected a JSON object, got {type(data).__name__}")
        # a bare JSON number/string is a value of the topic itself
        return [(self._single_name(topic), data, self.spec.unit)]

    def _tasmota(self, payload: bytes, topic: str) -> list[tuple[str, Any, str | None]]:
        data = _loads(payload)
        if not isinstance(data, dict):
            raise DecodeError(f"Tasmota payload must be a JSON object, got {type(data).__name__}")
        temp_unit = {"C": "°C", "F": "°F"}.get(str(data.get("TempUnit", "C")), "°C")
        pressure_unit = str(data.get("PressureUnit", "hPa"))
        out = []
        for path, v in _flatten(data):
            key = path.rsplit(".", 1)[-1]
            if key in _TASMOTA_SKIP:
                continue
            if key in _TASMOTA_TEMPS:
                unit = temp_unit
            elif key in ("Pressure", "SeaPressure"):
                unit = pressure_unit
            else:
                unit = _TASMOTA_UNITS.get(key)
            out.append((path, v, unit))
        return out

    def _zigbee2mqtt(self, payload: bytes, topic: str) -> list[tuple[str, Any, str | None]]:
        data = _loads(payload)
        if not isinstance(data, dict):
            raise DecodeError(f"Zigbee2MQTT payload must be a JSON object, got {type(data).__name__}")
        out = []
        for path, v in _flatten({k: v for k, v in data.items() if k not in _Z2M_SKIP}):
            out.append((path, v, _Z2M_UNITS.get(path)))
        return out

    def _plain_number(self, payload: bytes, topic: str) -> list[tuple[str, Any, str | None]]:
        text = _text(payload).strip()
        num = _number(text)
        if num is None or isinstance(num, bool):
            raise DecodeError(f"not a number: {text[:40]!r}")
        return [(self._single_name(topic), num, self.spec.unit)]

    def _key_value(self, payload: bytes, topic: str) -> list[tuple[str, Any, str | None]]:
        text = _text(payload).strip()
        sep = self.spec.kv_separator
        parts = text.split(self.spec.pair_separator) if self.spec.pair_separator else _KV_SPLIT.split(text)
        out = []
        for part in parts:
            part = part.strip()
            if not part:
                continue
            key, found, value = part.partition(sep)
            if not found or not key.strip():
                raise DecodeError(f"not key{sep}value: {part[:40]!r}")
            out.append((key.strip(), value.strip(), None))
        if not out:
            raise DecodeError("no key=value pairs")
        return out

    def _csv(self, payload: bytes, topic: str) -> list[tuple[str, Any, str | None]]:
        text = _text(payload).strip()
        try:
            rows = list(csv.reader([text], delimiter=self.spec.delimiter))
        except csv.Error as exc:
            raise DecodeError(f"bad CSV: {exc}") from None
        cells = rows[0] if rows else []
        if len(cells) != len(self.spec.columns):
            raise DecodeError(f"expected {len(self.spec.columns)} columns, got {len(cells)}")
        return [(col, cell.strip(), None) for col, cell in zip(self.spec.columns, cells) if col]

    def _regex_line(self, payload: bytes, topic: str) -> list[tuple[str, Any, str | None]]:
        assert self._regex is not None
        text = _text(payload)
        m = self._regex.search(text)
        if m is None:
            raise DecodeError(f"line does not match pattern: {text[:60]!r}")
        return [(k, v, None) for k, v in m.groupdict().items() if v is not None]

    def _single_name(self, topic: str) -> str:
        return self.spec.reading or (topic.rsplit("/", 1)[-1] if topic else "value")


def _text(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise DecodeError("binary data (NUL byte)")
    return text


def zigbee2mqtt_side_topic(topic: str) -> bool:
    """Bridge state, availability and set/get echoes are not device readings."""
    parts = topic.split("/")
    return (len(parts) > 1 and parts[1] == "bridge") or parts[-1] in _Z2M_SIDE_TOPICS
