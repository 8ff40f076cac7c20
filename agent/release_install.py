"""Installing a release beside the running one, offline: its wheels checked against the signed manifest, a venv
built in releases/.tmp-<id> with pip --no-index, then renamed into place; and `release adopt` for install.sh."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from agent.bundle import RELEASE_ID, copy_wheel, unpack_bundle, wheel_entry, wheels_of
from agent.children import run_child
from agent.failpoints import failpoint
from agent.guard import Layout, fsync_dir, set_link, write_atomic
from agent.logs import KvLogger

VENV_TIMEOUT_S = 120.0
PIP_TIMEOUT_S = 900.0  # a slow box compiles every module of every wheel


class InstallError(Exception):
    """Why a release could not be installed; nothing of it is left in releases/."""


def relocate(venv: Path, final: Path) -> None:
    """A venv built at one path made to run from another: scripts in bin/ name their interpreter by path."""
    old, new = str(venv).encode(), str(final).encode()
    for path in (venv / "bin").iterdir():
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1024 * 1024:
            continue
        blob = path.read_bytes()
        if old in blob and b"\0" not in blob[:1024]:
            mode = path.stat().st_mode & 0o777
            path.write_bytes(blob.replace(old, new))
            os.chmod(path, mode)
    cfg = venv / "pyvenv.cfg"
    if cfg.is_file():
        cfg.write_bytes(cfg.read_bytes().replace(old, new))


def sync_tree(root: Path) -> None:
    """fsync every file and directory under root: after the rename it must survive a power cut whole."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def installed_matches(layout: Layout, manifest: dict[str, Any]) -> bool:
    """The release is already in place with this very manifest (a start after the rename, before the trial)."""
    try:
        return json.loads((layout.root / manifest["release"] / "manifest.json").read_bytes()) == manifest
    except (OSError, ValueError):
        return False


async def install(layout: Layout, manifest: dict[str, Any], bundle: Path, running: str, log: KvLogger) -> None:
    """Build the release described by a verified manifest into releases/<id>; raises InstallError."""
    release = manifest["release"]
    final = layout.root / release
    if installed_matches(layout, manifest):
        return
    if final.exists() or final.is_symlink():
        raise InstallError(f"release {release} is already installed with other contents")
    tmp = layout.root / f".tmp-{release}"
    await asyncio.to_thread(shutil.rmtree, tmp, True)
    try:
        await _build(layout, manifest, bundle, running, tmp, log)
        await asyncio.to_thread(_finish, tmp, final, manifest)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, tmp, True)
        raise
    failpoint("update.install.renamed")
    log.info("release_installed", release=release, path=str(final))


async def _build(layout: Layout, manifest: dict[str, Any], bundle: Path, running: str, tmp: Path,
                 log: KvLogger) -> None:
    wheels = tmp / "wheels"
    await asyncio.to_thread(wheels.mkdir, parents=True)
    err = await asyncio.to_thread(unpack_bundle, bundle, manifest, wheels)
    if err:
        raise InstallError(err)
    included = set(manifest["included"])
    for name, entry in wheels_of(manifest).items():
        if name not in included:
            err = await asyncio.to_thread(copy_wheel, layout.root / running / "wheels" / name, wheels / name, entry)
            if err:
                raise InstallError(err)
    failpoint("update.install.wheels")
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    await _step("venv", [base_python, "-m", "venv", "--without-pip", str(tmp)], VENV_TIMEOUT_S)
    failpoint("update.install.venv")
    pip = [str(layout.root / running / "bin" / "python"), "-m", "pip", "--python", str(tmp / "bin" / "python"),
           "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
           "--find-links", str(wheels), *sorted(str(wheels / n) for n in wheels_of(manifest))]
    log.info("release_pip", release=manifest["release"], wheels=len(wheels_of(manifest)))
    await _step("pip install", pip, PIP_TIMEOUT_S)
    failpoint("update.install.pip")


async def _step(what: str, argv: list[str], timeout: float) -> None:
    try:
        res = await run_child(argv, timeout, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                  "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull})
    except (OSError, TimeoutError) as exc:
        raise InstallError(f"{what}: {exc}") from None
    if res.code != 0:
        raise InstallError(f"{what} failed: {res.last_words()}")


def _finish(tmp: Path, final: Path, manifest: dict[str, Any]) -> None:
    relocate(tmp, final)
    write_atomic(tmp / "manifest.json", json.dumps(manifest, sort_keys=True, indent=1).encode())
    sync_tree(tmp)
    os.rename(tmp, final)
    fsync_dir(final.parent)


def prune(layout: Layout, keep: set[str]) -> list[str]:
    """Remove release dirs (and leftovers of interrupted builds) other than `keep`; returns what went."""
    gone = []
    for path in layout.root.iterdir():
        if path.is_symlink() or not path.is_dir() or path.name in keep:
            continue
        if path.name.startswith(".tmp-") or layout.is_release(path.name):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path.name)
    return gone


def adopt(releases: Path, venv: Path, release_id: str | None = None) -> str:
    """Make a venv built beside the layout (its wheels in venv/wheels) a release and the current, good one:
    what install.sh does after building offline. Returns the release id."""
    releases.mkdir(parents=True, exist_ok=True)
    layout = Layout(releases)
    wheels = sorted((venv / "wheels").glob("*.whl"))
    if not wheels:
        raise InstallError(f"{venv}/wheels holds no wheels")
    entries = [wheel_entry(p) for p in wheels]
    agent = [w for w in entries if w["name"] == "commune_agent"]
    if len(agent) != 1:
        raise InstallError(f"{venv}/wheels: expected one commune_agent wheel, found {len(agent)}")
    release = release_id or f"{agent[0]['version']}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    if not RELEASE_ID.fullmatch(release):
        raise InstallError(f"release id {release!r}: letters, digits and _.+- only, at most 64")
    final = releases / release
    if final.exists():
        raise InstallError(f"{final} exists already")
    manifest = {"release": release, "version": agent[0]["version"],
                "python": f"{sys.version_info.major}.{sys.version_info.minor}", "created": round(time.time(), 3),
                "wheels": entries, "included": [w["file"] for w in entries], "base": None,
                "agent_wheel": agent[0]["file"], "origin": "install"}
    if venv.resolve() != final.resolve():
        _finish(venv, final, manifest)
    with layout.locked() as state:
        previous = state.get("good")
        state["good"] = release
        state["trial"] = None
    set_link(releases / "good", release)
    set_link(releases / "current", release)
    keep = {release} | ({previous} if isinstance(previous, str) else set())
    prune(layout, keep)
    return release
