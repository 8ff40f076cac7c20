"""Release bundles: the wheels that differ from a base release in one tar, and a manifest signed with the
release key (built by the fleet CLI, verified and unpacked by the box)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent import __version__
from agent.signing import canonical_json, sign_bytes, verify_bytes

DEFAULT_CHUNK_BYTES = 256 * 1024
MIN_CHUNK_BYTES = 1024
MAX_CHUNK_BYTES = 64 * 1024 * 1024
MAX_WHEELS = 500
RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
WHEEL_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+!-]{0,200}\.whl")
SHA256 = re.compile(r"[0-9a-f]{64}")
AGENT_DIST = "commune_agent"
_READ = 1024 * 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_READ):
            h.update(block)
    return h.hexdigest()


def dist_name(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 427/503: lower case, runs of -_. become _)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_entry(path: Path) -> dict[str, Any]:
    """One manifest entry for a wheel file: its distribution name and version from the file name, sha256, size."""
    parts = path.name[:-4].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"{path.name}: not a wheel file name (name-version-[build-]python-abi-platform.whl)")
    return {"file": path.name, "name": dist_name(parts[0]), "version": parts[1], "sha256": sha256_file(path),
            "size": path.stat().st_size}


def python_of(files: list[Path]) -> str:
    """The CPython version the wheels were built for (from a cpXY tag), else the one running this."""
    for path in files:
        m = re.search(r"-cp3(\d+)-", path.name)
        if m:
            return f"3.{m.group(1)}"
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def wheels_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every wheel a release installs, by file name (its entry: name, version, sha256, size)."""
    return {w["file"]: w for w in manifest.get("wheels", [])}


def chunk_offsets(manifest: dict[str, Any]) -> list[tuple[int, int]]:
    """(offset, length) of each chunk of the bundle, in order."""
    total, size = int(manifest["bundle_bytes"]), int(manifest["chunk_bytes"])
    return [(off, min(size, total - off)) for off in range(0, total, size)]


def build_bundle(wheel_dir: Path, out_dir: Path, release_id: str, base_manifest: dict[str, Any] | None,
                 chunk_bytes: int, release_key: Ed25519PrivateKey) -> tuple[dict[str, Any], str, Path]:
    """Bundle the wheels of wheel_dir that base_manifest's release lacks (same file and sha256 = left out),
    sign the manifest; writes `<out_dir>/<release_id>.tar` and returns (manifest, manifest_sig, bundle path)."""
    if not RELEASE_ID.fullmatch(release_id):
        raise ValueError(f"release id {release_id!r}: letters, digits and _.+- only, at most 64")
    if not MIN_CHUNK_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes {chunk_bytes}: between {MIN_CHUNK_BYTES} and {MAX_CHUNK_BYTES}")
    files = sorted(Path(wheel_dir).glob("*.whl"))
    if not files:
        raise ValueError(f"{wheel_dir}: no wheels")
    wheels = [wheel_entry(p) for p in files]
    agents = [w for w in wheels if w["name"] == AGENT_DIST]
    if len(agents) != 1:
        raise ValueError(f"{wheel_dir}: expected one {AGENT_DIST} wheel, found {len(agents)}")
    base = wheels_of(base_manifest) if base_manifest else {}
    included = [w["file"] for w in wheels
                if w["file"] not in base or base[w["file"]]["sha256"] != w["sha256"]]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = out_dir / f"{release_id}.tar"
    tmp = bundle.with_name(bundle.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in included:
            info = tar.gettarinfo(str(Path(wheel_dir) / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o644
            with open(Path(wheel_dir) / name, "rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, bundle)
    chunks = []
    with open(bundle, "rb") as f:
        while block := f.read(chunk_bytes):
            chunks.append(hashlib.sha256(block).hexdigest())
    manifest = {
        "release": release_id,
        "version": agents[0]["version"],
        "python": python_of(files),
        "created": round(time.time(), 3),
        "wheels": wheels,
        "included": included,
        "base": base_manifest.get("release") if base_manifest else None,
        "agent_wheel": agents[0]["file"],
        "bundle_bytes": bundle.stat().st_size,
        "chunk_bytes": chunk_bytes,
        "chunks": chunks,
        "builder": __version__,
    }
    return manifest, sign_bytes(release_key, canonical_json(manifest)), bundle


def verify_manifest(manifest: Any, sig: Any, public_key: Ed25519PublicKey) -> str | None:
    """None when the release key signed this manifest and its shape is sound; else why it is refused."""
    if not isinstance(manifest, dict):
        return "manifest is not an object"
    if not verify_bytes(public_key, canonical_json(manifest), sig):
        return "manifest signature does not verify with the pinned release key"
    return check_shape(manifest)


def check_shape(m: dict[str, Any]) -> str | None:
    """What a signed manifest must still satisfy before any of it is used as a file name or a size."""
    if not isinstance(m.get("release"), str) or not RELEASE_ID.fullmatch(m["release"]):
        return "manifest release id is missing or not [A-Za-z0-9_.+-]{1,64}"
    wheels = m.get("wheels")
    if not isinstance(wheels, list) or not 0 < len(wheels) <= MAX_WHEELS:
        return "manifest wheels must be a non-empty list"
    for w in wheels:
        if not (isinstance(w, dict) and isinstance(w.get("file"), str) and WHEEL_FILE.fullmatch(w["file"])
                and isinstance(w.get("sha256"), str) and SHA256.fullmatch(w["sha256"])
                and isinstance(w.get("size"), int) and w["size"] >= 0):
            return f"manifest wheel entry is malformed: {str(w)[:120]}"
    files = wheels_of(m)
    if len(files) != len(wheels):
        return "manifest lists a wheel twice"
    included = m.get("included")
    if not isinstance(included, list) or not all(isinstance(f, str) and f in files for f in included):
        return "manifest included must list wheels of the release"
    if m.get("agent_wheel") not in files:
        return "manifest agent_wheel is not one of its wheels"
    size, total, chunks = m.get("chunk_bytes"), m.get("bundle_bytes"), m.get("chunks")
    if not (isinstance(size, int) and MIN_CHUNK_BYTES <= size <= MAX_CHUNK_BYTES and isinstance(total, int)
            and total >= 0 and isinstance(chunks, list)):
        return "manifest chunk_bytes, bundle_bytes or chunks are malformed"
    if len(chunks) != -(-total // size) or not all(isinstance(c, str) and SHA256.fullmatch(c) for c in chunks):
        return "manifest chunks do not match bundle_bytes / chunk_bytes"
    if m.get("base") is not None and not (isinstance(m["base"], str) and RELEASE_ID.fullmatch(m["base"])):
        return "manifest base is not a release id"
    return None


def unpack_bundle(bundle: Path, manifest: dict[str, Any], dest: Path) -> str | None:
    """Write the bundle's wheels into dest, each checked against the manifest's sha256; None or what is wrong.
    Only regular files named in `included` are taken; nothing is extracted by a path from the archive."""
    files = wheels_of(manifest)
    wanted = set(manifest["included"])
    found: set[str] = set()
    try:
        with tarfile.open(bundle, "r:") as tar:
            for info in tar:
                if info.name not in wanted or not info.isfile() or info.name in found:
                    return f"bundle holds {info.name[:100]!r}, not one of the manifest's included wheels"
                src = tar.extractfile(info)
                assert src is not None
                err = _copy_checked(src, dest / info.name, files[info.name])
                if err:
                    return err
                found.add(info.name)
    except (tarfile.TarError, OSError) as exc:
        return f"bundle unreadable: {exc}"
    missing = wanted - found
    return f"bundle lacks {sorted(missing)[0]}" if missing else None


def copy_wheel(src: Path, dest: Path, entry: dict[str, Any]) -> str | None:
    """Copy one wheel (from a running release's wheels/), checked against its manifest entry."""
    try:
        with open(src, "rb") as f:
            return _copy_checked(f, dest, entry)
    except OSError as exc:
        return f"{entry['file']}: not in the running release ({exc.strerror or exc})"


def _copy_checked(src: io.BufferedIOBase | Any, dest: Path, entry: dict[str, Any]) -> str | None:
    h = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        while block := src.read(_READ):
            h.update(block)
            size += len(block)
            if size > entry["size"]:
                break
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if size != entry["size"] or h.hexdigest() != entry["sha256"]:
        dest.unlink(missing_ok=True)
        return f"{entry['file']}: sha256 does not match the manifest"
    return None
