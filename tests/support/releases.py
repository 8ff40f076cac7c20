"""Real releases for the self-update tests: dependency wheels built once per machine (keyed by setup.cfg),
agent wheels once per source tree and variant, and box layouts made by the project's own `release adopt`."""

from __future__ import annotations

import configparser
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.support.agentproc import ROOT

CACHE = ROOT / ".cache" / "release-wheels"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
SYSTEM_PYTHON = "/usr/bin/python3"
# pip and the releases see no PYTHONPATH: with the checkout on it, pip takes the checkout's egg-info for an
# installed commune-agent and leaves it out of the release (scripts/bench.sh exports PYTHONPATH=<checkout>)
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
# what a broken release does: the agent package raises as it is imported
BROKEN = 'raise RuntimeError("this release is broken at import")\n'


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _requirements() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    return [x.split("#")[0].strip() for x in lines if x.split("#")[0].strip()]


def dep_wheels() -> Path:
    """The core dependencies' wheels plus pip's (a release installs the next one with its own pip)."""
    reqs = _requirements()
    key = hashlib.sha256(json.dumps([reqs, sys.version_info[:2]]).encode()).hexdigest()[:12]
    out = CACHE / f"deps-{key}"
    with _locked("deps"):
        if not out.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=CACHE))
            subprocess.run([*PIP, "wheel", "-w", str(tmp / "run"), *reqs, "pip"], check=True, timeout=600,
                           env=CLEAN_ENV)
            subprocess.run([*PIP, "wheel", "-w", str(tmp / "build"), "setuptools>=64", "wheel"], check=True,
                           timeout=600, env=CLEAN_ENV)
            tmp.rename(out)
    return out


def _source_hash() -> str:
    h = hashlib.sha256()
    for top in ("agent", "drivers"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for name in ("setup.cfg", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()[:12]


def agent_wheel(variant: str = "base") -> Path:
    """A directory holding one agent wheel of this source tree: `base` as it is, `next` the same code as version
    <v>+next, `broken` as <v>+broken raising at import."""
    deps = dep_wheels()
    out = CACHE / f"agent-{_source_hash()}-{variant}"
    with _locked("agent"):
        if not out.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=CACHE))
            src = tmp / "src"
            src.mkdir()
            for top in ("agent", "drivers"):
                shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__"))
            for name in ("setup.cfg", "pyproject.toml", "README.md"):
                shutil.copy(ROOT / name, src / name)
            init = src / "agent" / "__init__.py"
            if variant != "base":
                text = init.read_text()
                version = text.split('__version__ = "')[1].split('"')[0]
                text = text.replace(f'__version__ = "{version}"', f'__version__ = "{version}+{variant}"')
                init.write_text(text + (BROKEN if variant == "broken" else ""))
            subprocess.run([*PIP, "wheel", "--no-deps", "--no-index", "--find-links", str(deps / "build"),
                            "-w", str(tmp / "wheel"), str(src)], check=True, timeout=300, capture_output=True,
                           env=CLEAN_ENV)
            (tmp / "wheel").rename(out)
            shutil.rmtree(tmp)
    return out


def release_wheels(dest: Path, variant: str = "base") -> Path:
    """Every wheel of one release (what install.sh puts in releases/<id>/wheels) in dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in (dep_wheels() / "run", agent_wheel(variant)):
        for whl in src.glob("*.whl"):
            shutil.copy(whl, dest / whl.name)
    return dest


def make_layout(releases: Path, release_id: str = "base") -> Path:
    """A releases/ dir holding one release as install.sh leaves it: a venv built offline, then adopted."""
    releases.mkdir(parents=True, exist_ok=True)
    venv = releases / f".tmp-install-{os.getpid()}"
    release_wheels(venv / "wheels")
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120, env=CLEAN_ENV)
    wheels = sorted(str(p) for p in (venv / "wheels").glob("*.whl"))
    subprocess.run([*PIP, "--python", str(venv / "bin" / "python"), "install", "--no-index", "--find-links",
                    str(venv / "wheels"), *wheels], check=True, timeout=300, env=CLEAN_ENV)
    subprocess.run([str(venv / "bin" / "python"), "-m", "agent", "release", "adopt", "--releases", str(releases),
                    "--id", release_id], check=True, timeout=120, capture_output=True, env=CLEAN_ENV)
    return releases


def copy_layout(src: Path, dest: Path) -> Path:
    """A box of its own from a prepared layout: release files hard-linked (nothing writes into a release)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(src), str(dest)], check=True)
    for name in ("state.json",):
        path = dest / name
        blob = path.read_bytes()
        path.unlink()
        path.write_bytes(blob)
    return dest
