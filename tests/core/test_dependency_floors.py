"""setup.cfg's version ranges tell the truth: every floor is a release that installs on our Python, inside its cap."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.agentproc import ROOT


def _requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) for the core and every extra, the extras that only combine others left out."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    found = [("install_requires", Requirement(line)) for line in cfg["options"]["install_requires"].split("\n")
             if line.strip()]
    for extra, lines in cfg["options.extras_require"].items():
        for line in lines.split("\n"):
            if line.strip() and not line.startswith("commune-agent"):
                found.append((extra, Requirement(line)))
    return found


REQUIREMENTS = _requirements()


def _floor(req: Requirement) -> Version | None:
    for spec in req.specifier:
        if spec.operator in (">=", "=="):
            return Version(spec.version)
    return None


@pytest.mark.parametrize("where, req", REQUIREMENTS, ids=[f"{w}:{r.name}" for w, r in REQUIREMENTS])
def test_every_dependency_has_a_floor_inside_its_range(where: str, req: Requirement) -> None:
    floor = _floor(req)
    assert floor is not None, f"{where}: {req} has no floor (>= or ==)"
    assert req.specifier.contains(floor, prereleases=True), f"{where}: {req}: the floor is outside the range"


def test_declared_dependencies_are_imported_somewhere() -> None:
    """A declared library nothing imports (as APScheduler was) is removed, not kept 'just in case'."""
    imports = {"paho-mqtt": "paho", "pyyaml": "yaml", "opencv-python-headless": "cv2", "onvif-zeep": "onvif",
               "gtts": "gtts", "pyaudio": "pyaudio", "pyserial": "serial", "scikit-image": "skimage"}
    sources = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                        for d in ("agent", "drivers", "tests", "scripts") for p in (ROOT / d).rglob("*.py"))
    for _, req in REQUIREMENTS:
        name = canonicalize_name(req.name)
        if name in ("pytest", "ruff"):
            continue  # tools
        if name == "pytest-timeout":  # a plugin: used through the ini option it reads
            assert re.search(r"^timeout = \d+", (ROOT / "pyproject.toml").read_text(), re.M), "pytest-timeout unused"
            continue
        if name == "pytest-xdist":  # a plugin: used through the worker count scripts/test.sh passes
            assert re.search(r"--dist loadgroup", (ROOT / "scripts" / "test.sh").read_text()), "pytest-xdist unused"
            continue
        module = imports.get(name, name.replace("-", "_"))
        used = re.search(rf"^\s*(import|from) {module}\b|__import__\(\"{module}\"\)", sources, re.M)
        assert used, f"{req.name} is never imported"


@pytest.mark.index
def test_lowest_allowed_versions_resolve_on_this_python() -> None:
    """pip finds each floor release for this interpreter (wheel tags, Requires-Python) without installing it."""
    batches: list[dict[str, str]] = [{}]
    for _, req in REQUIREMENTS:
        pin = f"{req.name}=={_floor(req)}"
        name = canonicalize_name(req.name)
        for batch in batches:  # one name twice with different floors (core vs tests) goes in another run
            if batch.get(name, pin) == pin:
                batch[name] = pin
                break
        else:
            batches.append({name: pin})
    for batch in batches:
        res = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                              "--quiet", "--disable-pip-version-check", *sorted(batch.values())],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"pip cannot resolve {sorted(batch.values())}:\n{res.stderr[-3000:]}"
