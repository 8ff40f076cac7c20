"""Configuration versions on the box: every configuration it ran, the last-known-good one, and the files a
push brought with it — so any change can be undone without anyone travelling."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.guard import PUSHED_DIR  # the guard (standard library only) names the files beside agent.yaml
from agent.statefile import read_json, write_bytes_atomic, write_json

FILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DIR = re.compile(r"(\d{6})-([0-9a-f]{12})")


def version_sha(config: bytes, files: dict[str, bytes]) -> str:
    """One hash for the configuration and the files it refers to: they change together."""
    h = hashlib.sha256(config)
    for name in sorted(files):
        h.update(b"\0" + name.encode() + b"\0" + files[name])
    return h.hexdigest()[:12]


def pushed_dir(config_path: Path) -> Path:
    return config_path.parent / PUSHED_DIR


def read_pushed(config_path: Path) -> dict[str, bytes]:
    """The pushed files now in place (none when the directory is missing)."""
    folder = pushed_dir(config_path)
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and FILE_NAME.fullmatch(p.name))
    except FileNotFoundError:
        return {}
    return {n: (folder / n).read_bytes() for n in names}


def write_pushed(config_path: Path, files: dict[str, bytes]) -> None:
    """Make the pushed directory hold exactly `files` (0600), each written atomically."""
    folder = pushed_dir(config_path)
    folder.mkdir(mode=0o700, exist_ok=True)
    for name, blob in files.items():
        target = folder / name
        if target.is_file() and target.read_bytes() == blob:
            continue
        write_bytes_atomic(target, blob)
        os.chmod(target, 0o600)
    for p in folder.iterdir():
        if p.name not in files and p.is_file() and FILE_NAME.fullmatch(p.name):
            p.unlink()


@dataclass(frozen=True)
class Version:
    n: int
    sha: str
    path: Path
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    def ref(self) -> dict[str, Any]:
        return {"n": self.n, "sha": self.sha}

    def config_bytes(self) -> bytes:
        return (self.path / "agent.yaml").read_bytes()

    def files(self) -> dict[str, bytes]:
        folder = self.path / PUSHED_DIR
        if not folder.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


class ConfigHistory:
    """Versions as folders `NNNNNN-<sha>` under root; `good` names the last-known-good one."""

    def __init__(self, root: Path, keep: int = 10) -> None:
        self.root = root
        self.keep = keep

    def versions(self) -> list[Version]:
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        out = []
        for p in entries:
            m = _DIR.fullmatch(p.name)
            if m and (p / "agent.yaml").is_file():
                meta = read_json(p / "meta.json")
                out.append(Version(int(m.group(1)), m.group(2), p, meta if isinstance(meta, dict) else {}))
        return sorted(out, key=lambda v: v.n)

    def find(self, sha: str) -> Version | None:
        return next((v for v in reversed(self.versions()) if v.sha == sha), None)

    def get(self, n: int) -> Version | None:
        return next((v for v in self.versions() if v.n == n), None)

    def good(self) -> Version | None:
        try:
            name = (self.root / "good").read_text().strip()
        except OSError:
            return None
        m = _DIR.fullmatch(name)
        return self.get(int(m.group(1))) if m else None

    def record(self, config: bytes, files: dict[str, bytes], origin: str, change_id: str = "",
               committed: bool = False) -> Version:
        """The version holding exactly these bytes: an existing one (a rollback, a reload of the same file)
        or a new one numbered after the newest."""
        sha = version_sha(config, files)
        found = self.find(sha)
        if found is not None:
            return found
        versions = self.versions()
        n = versions[-1].n + 1 if versions else 1
        final = self.root / f"{n:06d}-{sha}"
        tmp = self.root / f".tmp-{final.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / PUSHED_DIR).mkdir(parents=True)
        (tmp / "agent.yaml").write_bytes(config)
        for name, blob in files.items():
            (tmp / PUSHED_DIR / name).write_bytes(blob)
            os.chmod(tmp / PUSHED_DIR / name, 0o600)
        meta = {"n": n, "sha": sha, "origin": origin, "change_id": change_id, "ts": round(time.time(), 3),
                "committed": committed}
        write_json(tmp / "meta.json", meta)
        os.replace(tmp, final)
        version = Version(n, sha, final, meta)
        if committed:
            self.commit(version)
        return version

    def commit(self, version: Version) -> None:
        """`version` is last-known-good from now on; older versions beyond `keep` go (never the good one)."""
        meta = dict(version.meta, committed=True)
        write_json(version.path / "meta.json", meta)
        write_bytes_atomic(self.root / "good", f"{version.name}\n".encode())
        self._prune(version)

    def _prune(self, good: Version) -> None:
        versions = self.versions()
        for v in versions[:max(0, len(versions) - self.keep)]:
            if v.n != good.n:
                shutil.rmtree(v.path, ignore_errors=True)

    def restore(self, version: Version, config_path: Path) -> None:
        """Put a version's configuration and pushed files back in place."""
        write_pushed(config_path, version.files())
        write_bytes_atomic(config_path, version.config_bytes())

    def current(self, config_path: Path, commit: bool = True) -> Version:
        """The version of what is in place now, recorded as a hand edit if it is new; with `commit` it becomes
        last-known-good (what a technician loads by hand is what the box should come back to)."""
        version = self.record(config_path.read_bytes(), read_pushed(config_path), origin="local")
        good = self.good()
        if commit and (good is None or good.n != version.n):
            self.commit(version)
            version = self.get(version.n) or version
        return version
