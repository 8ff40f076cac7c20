"""`commune-agent sensors decode|scan-modbus` through the real argument parser."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from tests.sensors.sim import SOIL_VALUES, PtyPair, RtuServer

CONFIG = """\
site: {site_id: "18241"}
coc: {host: 127.0.0.1}
data_dir: %(data)s
sensors:
  mqtt:
    - name: farm
      topics:
        - filter: "farm/+/weather"
          format: json
          fields:
            - {source: main.temp_f, name: air_temperature, from_unit: "°F", unit: "°C"}
  serial:
    - name: canal
      port: /dev/ttyUSB9
      format: csv
      columns: [level, flow]
      fields: [{source: level, name: water_level, unit: cm, scale: 100}]
"""


def _run(monkeypatch: Any, capsys: Any, argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_decode_adhoc_formats(monkeypatch: Any, capsys: Any) -> None:
    code, out, _ = _run(monkeypatch, capsys, ["sensors", "decode", "--format", "tasmota", "--topic",
                                              "tele/pump/SENSOR"],
                        b'{"Time":"t","DS18B20":{"Temperature":21.5},"TempUnit":"C"}')
    assert code == 0 and out.strip() == "DS18B20.Temperature = 21.5 °C  (device=tele/pump/SENSOR)"
    code, out, err = _run(monkeypatch, capsys, ["sensors", "decode", "--format", "regex", "--pattern",
                                                r"L=(?P<level>\d+)", "--json"], b"L=12\nL=13\nnoise\n")
    assert code == 1 and [json.loads(line)["value"] for line in out.splitlines()] == [12, 13]
    assert "bad line 3: line does not match pattern" in err
    code, _, err = _run(monkeypatch, capsys, ["sensors", "decode", "--format", "json"], b"{nope")
    assert code == 1 and "invalid JSON" in err
    code, _, err = _run(monkeypatch, capsys, ["sensors", "decode", "--format", "csv"], b"1,2")
    assert code == 2 and "columns" in err


def test_decode_with_mapping_from_config(monkeypatch: Any, capsys: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(CONFIG % {"data": tmp_path / "data"})
    code, out, _ = _run(monkeypatch, capsys, ["--config", str(cfg), "sensors", "decode", "--use", "farm/+/weather",
                                              "--topic", "farm/station-9/weather"], b'{"main": {"temp_f": 212}}')
    assert code == 0 and out.strip() == "air_temperature = 100.0 °C  (device=station-9)"
    code, out, _ = _run(monkeypatch, capsys, ["--config", str(cfg), "sensors", "decode", "--use", "canal"],
                        b"1.5,3\n")
    assert code == 0 and out.strip() == "water_level = 150.0 cm  (device=canal)"
    code, _, err = _run(monkeypatch, capsys, ["--config", str(cfg), "sensors", "decode", "--use", "nope"], b"")
    assert code == 2 and "have: canal, farm/+/weather" in err


def test_scan_modbus_lists_answering_units(monkeypatch: Any, capsys: Any, tmp_path: Path) -> None:
    pair = PtyPair(tmp_path / "dev", tmp_path / "host").start()
    server = RtuServer(pair.device_end, {1: SOIL_VALUES, 4: [7]}, silent=(3,)).start()
    try:
        code, out, _ = _run(monkeypatch, capsys, ["sensors", "scan-modbus", "--port", str(pair.host_end),
                                                  "--last", "6", "--timeout", "0.1"])
        assert code == 0
        assert "unit 1: answers (holding register 0 = 455)" in out
        assert out.strip().endswith("answering unit ids: 1 4")
        code, out, _ = _run(monkeypatch, capsys, ["sensors", "scan-modbus", "--port", str(pair.host_end),
                                                  "--address", "50", "--first", "4", "--last", "4"])
        assert code == 0 and "unit 4: answers (exception 2" in out
    finally:
        server.stop()
        pair.stop()
    code, _, err = _run(monkeypatch, capsys, ["sensors", "scan-modbus", "--port", str(tmp_path / "gone")])
    assert code == 2 and "cannot open" in err


@pytest.mark.parametrize("name", ["example.yaml", "demo.yaml"])
def test_shipped_yaml_sections_validate(name: str, tmp_path: Path) -> None:
    import yaml

    from drivers.sensors.config import SensorsConfig

    path = Path(__file__).parents[2] / "drivers" / "sensors" / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    section = data["sensors"] if "sensors" in data else data
    for m in section.get("mqtt", []):  # secrets must exist as files to validate
        if m.get("password_file"):
            secret = tmp_path / f"{m['name']}.secret"
            secret.write_text("x\n")
            m["password_file"] = str(secret)
    SensorsConfig.model_validate(section)
