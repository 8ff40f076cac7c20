"""Families meet only at the front door (ARCHITECTURE.md): a family imports another only through its face,
`drivers.<folder>.api`, and only a family it declares in `drivers/registry.py` (`uses`); the core imports no
family but through the registry's lazy `load_object`; no family builds a path into another's data dir."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from drivers.registry import SPECS, label
from tests.support.source import parse_file

ROOT = Path(__file__).resolve().parents[1]
BY_FOLDER = {s.folder: s for s in SPECS if s.folder is not None}
NAMES = {s.section for s in SPECS if s.folder is not None} | set(BY_FOLDER)  # "cameras" and "camera" alike
HEAVY = ("numpy", "cv2", "pyaudio", "croniter", "pyroute2")


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import: `from a.b import c` names a.b.c; a relative one beyond its own
    package is named as such so it cannot slip by."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                yield node.lineno, f"<relative import from {'.' * node.level}{node.module or ''}>"
            elif node.level == 0 and node.module:
                for alias in node.names:
                    yield node.lineno, f"{node.module}.{alias.name}"


def family_violations(path: Path, folder: str) -> list[str]:
    """What a family's file does that only the front door allows: another family's internals, an undeclared
    family, a path into another family's data dir."""
    spec = BY_FOLDER[folder]
    out = []
    tree = parse_file(path)
    for line, name in _imports(tree):
        if name.startswith("<relative"):
            out.append(f"{path}:{line}: {name}")
            continue
        parts = name.split(".")
        if parts[0] != "drivers" or len(parts) < 2 or parts[1] in (folder, "registry"):
            continue
        other = BY_FOLDER.get(parts[1])
        if other is None or parts[2:3] != ["api"]:
            out.append(f"{path}:{line}: {name} is not a family's face (drivers.<folder>.api)")
        elif other.section not in spec.uses:
            out.append(f"{path}:{line}: {name}: {spec.section} does not declare {other.section!r} in uses")
    own = {spec.section, folder}
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and right.value in NAMES - own:
                out.append(f"{path}:{node.lineno}: a path into {right.value!r}'s data dir; use its face")
    return out


def core_violations(path: Path) -> list[str]:
    """The core knows families only as the registry's "module:Class" strings."""
    return [f"{path}:{line}: {name}: the core imports families only through drivers.registry"
            for line, name in _imports(parse_file(path))
            if name.split(".")[0] == "drivers" and name.split(".")[1:2] != ["registry"]]


def _sources(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def test_families_import_each_other_only_through_declared_faces() -> None:
    found = []
    for path in _sources("drivers"):
        folder = path.relative_to(ROOT / "drivers").parts[0]
        if folder in BY_FOLDER:
            found += family_violations(path, folder)
    assert found == []


def test_the_core_imports_no_family() -> None:
    found = [v for path in _sources("agent") for v in core_violations(path)]
    assert found == []


def test_every_declared_use_is_a_family_with_a_face() -> None:
    for spec in SPECS:
        for used in spec.uses:
            other = next((s for s in SPECS if s.section == used), None)
            assert other is not None and other.folder is not None and other is not spec, (spec.section, used)
            assert (ROOT / "drivers" / other.folder / "api.py").is_file(), used


@pytest.mark.parametrize(("folder", "source", "bad"), [
    ("console", "from drivers.broadcast.store import Store\n", True),
    ("console", "import drivers.broadcast\n", True),
    ("console", "from drivers import camera\n", True),
    ("console", "from ...broadcast import store\n", True),
    ("sensors", "from drivers.broadcast import api\n", True),  # not declared by sensors
    ("console", "x = root / 'broadcast' / 'state.json'\n", True),
    ("console", "from drivers.broadcast import api as broadcast\nfrom drivers.camera.api import live_state\n", False),
    ("console", "from drivers.registry import label\nfrom drivers.console.feed import Feed\n", False),
    ("camera", "p = data_dir / 'cameras' / 'state.json'\n", False),
])
def test_the_check_catches_a_reach_into_another_family(tmp_path: Path, folder: str, source: str, bad: bool) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert bool(family_violations(path, folder)) is bad


def test_the_check_catches_the_core_importing_a_family(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text("from drivers.camera.api import live_state\n")
    assert core_violations(path)
    path.write_text("from drivers.registry import SPECS, load_object\n")
    assert not core_violations(path)


def test_importing_the_faces_loads_nothing_heavy() -> None:
    faces = [f"drivers.{s.folder}.api" for s in SPECS if s.folder and (ROOT / "drivers" / s.folder / "api.py").exists()]
    code = (f"import importlib, sys\nfor m in {faces!r}: importlib.import_module(m)\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"{faces} loaded {out.stdout.strip()}"


def test_every_driver_has_a_name_in_both_languages() -> None:
    for spec in SPECS:
        assert spec.label is not None and spec.label.vi and spec.label.en, spec.section
    assert label("broadcast", "vi") == "Loa truyền thanh" and label("broadcast", "en") == "Loudspeakers"
    assert label("host", "vi") == "Máy chủ"
    assert label("something-new", "vi") == "something-new"
