"""Config docs from one source: the example is generated from the family examples, and the schema documents
every option."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import load
from drivers.registry import SPECS
from tests.support.agentproc import ROOT

GEN = ROOT / "scripts" / "gen-example-config"
CORE_SECTIONS = ("site", "coc", "data_dir", "spool", "logging", "telemetry", "fleet", "host")


def _gen_module() -> Any:
    loader = SourceFileLoader("gen_example_config", str(GEN))
    spec = importlib.util.spec_from_loader("gen_example_config", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_example_config_is_generated_from_its_sources() -> None:
    res = subprocess.run([sys.executable, str(GEN), "--check"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, f"{res.stderr}\n{res.stdout[:3000]}"


def test_drift_is_caught(tmp_path: Path) -> None:
    """An edit to the generated file alone (not to its sources) is reported with a diff."""
    stale = tmp_path / "agent.example.yaml"
    stale.write_text((ROOT / "config" / "agent.example.yaml").read_text().replace("batch_size: 500", "batch_size: 9"))
    res = subprocess.run([sys.executable, str(GEN), "--check", "-o", str(stale)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1
    assert "-  batch_size: 9" in res.stdout and "+  batch_size: 500" in res.stdout
    assert "out of date" in res.stderr


def test_sections_come_in_registry_order_after_the_core() -> None:
    text = (ROOT / "config" / "agent.example.yaml").read_text()
    tops = [m.group(1) for m in re.finditer(r"^([a-z_]+):", text, re.M)]
    families = [s.section for s in SPECS if s.section not in CORE_SECTIONS]
    assert tops == list(CORE_SECTIONS) + families


@pytest.mark.parametrize("section", [s.section for s in SPECS if s.section not in CORE_SECTIONS])
def test_family_example_parses_and_carries_its_key(section: str) -> None:
    spec = next(s for s in SPECS if s.section == section)
    path = _gen_module().example_path(spec)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    assert list(data) == [section], f"{path.relative_to(ROOT)}: top-level keys {list(data)}, want [{section!r}]"


def test_generated_example_validates(tmp_path: Path) -> None:
    """Once its secret files exist, the shipped example passes agent.config.load as written."""
    text = _gen_module().generate()
    for s in sorted(set(re.findall(r"(/etc/commune-agent/[\w./-]+)", text))):
        target = tmp_path / s.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("secret-of-sixteen-or-more\n")
        text = text.replace(s, str(target))
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    loaded = load(path)
    for spec in SPECS:
        assert getattr(loaded.config, spec.section) is not None, f"the example leaves {spec.section} out"


def _undocumented(schema: dict[str, Any]) -> list[str]:
    """Dotted paths of schema properties without a description ([] = list item, {} = mapping value)."""
    defs = schema.get("$defs", {})
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str, seen: frozenset[str]) -> None:
        ref = node.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(defs[name], path, seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, path, seen)
        for sub in node.get("discriminator", {}).get("mapping", {}).values():
            walk({"$ref": sub}, path, seen)
        for name, prop in node.get("properties", {}).items():
            dotted = f"{path}.{name}" if path else name
            if not str(prop.get("description", "")).strip() and dotted not in missing:
                missing.append(dotted)
            walk(prop, dotted, seen)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]", seen)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}", seen)

    walk(schema, "", frozenset())
    return missing


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-m", "agent.cli", "schema"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_schema_walk_finds_a_missing_description() -> None:
    """The walker itself: nested models, lists, mappings and unions are all looked into."""
    schema = {"properties": {"a": {"description": "x", "$ref": "#/$defs/A"}},
              "$defs": {"A": {"properties": {"b": {"type": "array", "description": "y",
                                                   "items": {"$ref": "#/$defs/B"}},
                                             "c": {"type": "object", "description": "z",
                                                   "additionalProperties": {"anyOf": [{"$ref": "#/$defs/B"}]}}}},
                        "B": {"properties": {"d": {"type": "string"}}}}}
    assert _undocumented(schema) == ["a.b[].d", "a.c{}.d"]


@pytest.mark.parametrize("section", [*CORE_SECTIONS, *(s.section for s in SPECS if s.section not in CORE_SECTIONS)])
def test_every_config_option_has_a_description(schema: dict[str, Any], section: str) -> None:
    missing = [p for p in _undocumented(schema) if re.split(r"[.\[{]", p, maxsplit=1)[0] == section]
    assert not missing, f"config options without description= ({len(missing)}): {', '.join(missing)}"
