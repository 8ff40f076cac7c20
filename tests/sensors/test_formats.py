"""Payload decoders, unit conversions, register maps and bus timing; no hardware needed."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError

from drivers.sensors.config import FormatSpec, ModbusDevice, Register, SensorsConfig
from drivers.sensors.formats import DecodeError, Decoder
from drivers.sensors.modbus_rtu import char_bits, decode_register, gap_s, plan_reads, read_wire_s
from drivers.sensors.sources.mqtt import device_name


def _dec(payload: bytes | str, topic: str = "", **spec: object) -> list[tuple]:
    data = payload.encode() if isinstance(payload, str) else payload
    return Decoder(FormatSpec.model_validate(spec)).decode(data, topic).readings


def test_tasmota_units_follow_tempunit() -> None:
    payload = {"Time": "x", "BME280": {"Temperature": 68.0, "Humidity": 40, "Pressure": 1000}, "TempUnit": "F",
               "PressureUnit": "hPa", "ANALOG": {"A0": 512}}
    assert _dec(json.dumps(payload), format="tasmota") == [
        ("BME280.Temperature", 68.0, "°F"), ("BME280.Humidity", 40, "%"), ("BME280.Pressure", 1000, "hPa"),
        ("ANALOG.A0", 512, None)]
    mapped = _dec(json.dumps(payload), format="tasmota",
                  fields=[{"source": "BME280.Temperature", "name": "t", "unit": "°C"}])
    assert mapped == [("t", 20.0, "°C")]


def test_json_paths_lists_scale_offset_and_bare_values() -> None:
    spec = {"format": "json", "fields": [{"source": "a.b.1", "name": "x", "scale": 10, "offset": -1},
                                         {"source": "k", "name": "k", "unit": "K", "from_unit": "K"}]}
    assert _dec('{"a": {"b": [0, 2.5]}, "k": "300"}', **spec) == [("x", 24.0, None), ("k", 300, "K")]
    assert _dec("21.5", "farm/pond/temp", format="json") == [("temp", 21.5, None)]
    assert _dec('{"a": {"b": 1}, "s": "text", "n": null}', format="json") == [("a.b", 1, None)]


def test_number_key_value_csv_regex() -> None:
    assert _dec(" -3 ", "x/y/level", format="number", unit="cm") == [("level", -3, "cm")]
    assert _dec("t:1,h:2", format="key_value", kv_separator=":") == [("t", 1, None), ("h", 2, None)]
    assert _dec("1;2;3", format="csv", columns=["a", "b", "c"], delimiter=";",
                fields=[{"source": "c", "name": "c"}]) == [("c", 3, None)]
    assert _dec("V=12.6V", format="regex", pattern=r"V=(?P<v>[\d.]+)V") == [("v", 12.6, None)]


@pytest.mark.parametrize("spec,payload", [
    ({"format": "json", "fields": [{"source": "t"}]}, b'{"t": NaN}'),
    ({"format": "json"}, b"\xff\xd8\xff\xe0 binary"),
    ({"format": "json", "fields": [{"source": "t"}]}, b"42"),
    ({"format": "tasmota"}, b"[1, 2]"),
    ({"format": "zigbee2mqtt"}, b'"online"'),
    ({"format": "number"}, b"twelve"),
    ({"format": "number"}, b"inf"),
    ({"format": "key_value"}, b"novalue here"),
    ({"format": "csv", "columns": ["a", "b"]}, b"1,2,3"),
    ({"format": "regex", "pattern": r"(?P<a>\d+)"}, b"none"),
    ({"format": "json", "max_payload_bytes": 100}, b"{" + b" " * 200 + b"}"),
    ({"format": "key_value"}, b"a=1\x00"),
])
def test_malformed_payloads_raise_decode_error(spec: dict, payload: bytes) -> None:
    with pytest.raises(DecodeError):
        Decoder(FormatSpec.model_validate(spec)).decode(payload)


def test_fuzzed_payloads_never_raise_anything_else() -> None:
    rng = random.Random(1)
    decoders = [Decoder(FormatSpec.model_validate(s)) for s in (
        {"format": "json"}, {"format": "tasmota"}, {"format": "zigbee2mqtt"}, {"format": "number"},
        {"format": "key_value"}, {"format": "csv", "columns": ["a", "b"]},
        {"format": "regex", "pattern": r"(?P<a>[\d.]+)"},
        {"format": "json", "fields": [{"source": "a.b", "unit": "°C", "from_unit": "°F"}]})]
    samples = [b'{"a": {"b": %s}}', b'[%s]', b"%s", b"a=%s", b"%s,%s"]
    values = [b"1e309", b"-0", b"NaN", b"true", b"null", b'"x"', b"{}", b"9" * 5000, b"\xc3\x28", b"1.5"]
    for _ in range(3000):
        tmpl = rng.choice(samples)
        payload = tmpl.replace(b"%s", rng.choice(values))
        for d in decoders:
            try:
                result = d.decode(payload)
            except DecodeError:
                continue
            for _name, value, _unit in result.readings:
                assert isinstance(value, (int, float, bool)) and value == value  # never NaN


def test_unknown_conversion_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="no conversion"):
        FormatSpec.model_validate({"format": "json", "fields": [{"source": "t", "unit": "°C", "from_unit": "psi"}]})
    with pytest.raises(ValidationError, match="named groups"):
        FormatSpec.model_validate({"format": "regex", "pattern": r"(\d+)"})
    with pytest.raises(ValidationError, match="columns"):
        FormatSpec.model_validate({"format": "csv"})


def test_device_naming_from_topic() -> None:
    assert device_name("tele/+/SENSOR", "tele/pump-2/SENSOR", None) == "pump-2"
    assert device_name("zigbee2mqtt/#", "zigbee2mqtt/field/probe 3", None) == "field/probe 3"
    assert device_name("a/+/b/+", "a/x/b/y", None) == "x/y"
    assert device_name("farm/+/+/state", "farm/north/st1/state", "{2}@{1}") == "st1@north"
    assert device_name("gw/#", "gw/lora/dev9", "lora-{#}") == "lora-lora/dev9"
    assert device_name("fixed/topic", "fixed/topic", None) == "fixed/topic"


def test_register_decoding_and_word_order() -> None:
    assert decode_register(Register(name="t", address=0, type="int16", scale=0.1), [0xFFE7]) == -2.5
    assert decode_register(Register(name="e", address=0, type="uint32"), [0x0001, 0x1170]) == 70000
    assert decode_register(Register(name="e", address=0, type="uint32", word_order="little"),
                           [0x1170, 0x0001]) == 70000
    assert decode_register(Register(name="e", address=0, type="int32"), [0xFFFF, 0xFFFE]) == -2
    assert decode_register(Register(name="p", address=0, type="float32"), [0x449A, 0x5000]) == 1234.5


def test_reads_are_coalesced() -> None:
    regs = [Register(name=f"r{a}", address=a) for a in (0, 1, 2, 5)] + \
           [Register(name="f", address=6, type="float32"), Register(name="i", address=0, table="input"),
            Register(name="far", address=300)]
    blocks = plan_reads(regs)
    assert [(b.table, b.address, b.count) for b in blocks] == [
        ("holding", 0, 3), ("holding", 5, 3), ("holding", 300, 1), ("input", 0, 1)]
    assert [(b.address, b.count) for b in plan_reads(regs, max_gap=2)][:2] == [(0, 8), (300, 1)]
    many = [Register(name=f"r{a}", address=a) for a in range(200)]
    assert [b.count for b in plan_reads(many)] == [125, 75]


def test_wire_time_uses_real_framing() -> None:
    assert char_bits(8, "N", 1) == 10 and char_bits(8, "E", 1) == 11 and char_bits(8, "N", 2) == 11
    assert gap_s(9600, 10) == pytest.approx(3.5 * 10 / 9600)
    assert gap_s(115200, 10) == 0.00175
    # 7 registers at 9600 8N1: 8 + 19 bytes and two 3.5-character gaps = 34 characters
    assert read_wire_s(7, 9600, 10) == pytest.approx(34 * 10 / 9600)


def test_shipped_soil_map_and_map_errors() -> None:
    dev = ModbusDevice.model_validate({"name": "soil", "unit_id": 1, "map": "soil_7in1"})
    assert [r.name for r in dev.registers] == ["soil_moisture", "soil_temperature", "soil_ec", "soil_ph",
                                               "soil_nitrogen", "soil_phosphorus", "soil_potassium"]
    assert [(b.address, b.count) for b in plan_reads(list(dev.registers))] == [(0, 7)]
    with pytest.raises(ValidationError, match="not found"):
        ModbusDevice.model_validate({"name": "x", "unit_id": 1, "map": "no_such_map"})
    with pytest.raises(ValidationError, match="unit_id"):
        SensorsConfig.model_validate({"modbus": [{"name": "b", "port": "/dev/x", "devices": [
            {"name": "a", "unit_id": 1, "map": "soil_7in1"}, {"name": "b", "unit_id": 1, "map": "soil_7in1"}]}]})
    with pytest.raises(ValidationError, match="serial lines support"):
        SensorsConfig.model_validate({"serial": [{"name": "s", "port": "/dev/x", "format": "tasmota"}]})
    with pytest.raises(ValidationError, match="invalid MQTT topic filter"):
        SensorsConfig.model_validate({"mqtt": [{"name": "m", "topics": [{"filter": "a/#/b", "format": "json"}]}]})
