"""Releases from the COC: build a signed bundle from a checkout, publish it retained in chunks, read it back for a
push. A bundle dir holds `<release>.tar`, `manifest.json` and `manifest.sig`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from agent import bundle
from agent.fleet.config import FleetCliConfig, FleetError
from agent.fleet.mqtt import FleetMqtt
from agent.signing import read_private_key

PACKET_SLACK = 1024  # a chunk's topic and MQTT header fit in this under the broker's maximum packet size
WINDOW = 8  # chunks in flight at once


def release_key(cfg: FleetCliConfig) -> Any:
    if cfg.release_key_file is None:
        raise FleetError("release_key_file is not set in the fleet config: releases cannot be signed")
    try:
        return read_private_key(cfg.release_key_file.expanduser())
    except ValueError as exc:
        raise FleetError(str(exc)) from None


def pip_wheels(checkout: Path, extras: str, dest: Path, find_links: list[Path], no_index: bool) -> None:
    """`pip wheel` of the project and its dependencies: every wheel a release installs on the box."""
    spec = f"{checkout.resolve()}[{extras}]" if extras else str(checkout.resolve())
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(dest), spec]
    argv += [a for d in find_links for a in ("--find-links", str(d))] + (["--no-index"] if no_index else [])
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise FleetError(f"pip wheel failed ({proc.returncode}): {tail}", 1)


def build(cfg: FleetCliConfig, wheel_dir: Path | None, checkout: Path, extras: str, find_links: list[Path],
          no_index: bool, base: Path | None, out: Path, chunk_bytes: int, release_id: str | None) -> dict[str, Any]:
    """Build the bundle into `<out>/<release id>/`; returns what `release build --json` prints."""
    key = release_key(cfg)
    base_manifest = None
    if base is not None:
        try:
            base_manifest = json.loads(base.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FleetError(f"base manifest {base}: {getattr(exc, 'strerror', None) or exc}") from None
    with tempfile.TemporaryDirectory(prefix="commune-release-") as tmp:
        if wheel_dir is None:
            wheel_dir = Path(tmp)
            pip_wheels(checkout, extras, wheel_dir, find_links, no_index)
        agent = [p for p in wheel_dir.glob("*.whl") if p.name.lower().startswith(bundle.AGENT_DIST + "-")]
        if release_id is None:
            version = agent[0].name.split("-")[1] if len(agent) == 1 else "0"
            release_id = f"{version}-{time.strftime('%Y%m%d%H%M%S')}"
        target = out / release_id
        if target.exists():
            raise FleetError(f"{target} exists already: give another --release-id or --out")
        try:
            manifest, sig, tar = bundle.build_bundle(wheel_dir, target, release_id, base_manifest, chunk_bytes, key)
        except ValueError as exc:
            raise FleetError(f"release build: {exc}") from None
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (target / "manifest.sig").write_text(sig + "\n", encoding="ascii")
    return {"release": release_id, "dir": str(target), "bundle": str(tar), "bundle_bytes": manifest["bundle_bytes"],
            "chunks": len(manifest["chunks"]), "wheels": len(manifest["wheels"]),
            "included": len(manifest["included"]), "base": manifest["base"]}


def read_bundle_dir(path: Path) -> tuple[dict[str, Any], str, Path]:
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        sig = (path / "manifest.sig").read_text(encoding="ascii").strip()
    except (OSError, ValueError) as exc:
        raise FleetError(f"{path}: not a bundle dir (manifest.json, manifest.sig): "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    why = bundle.check_shape(manifest) if isinstance(manifest, dict) else "manifest is not an object"
    if why:
        raise FleetError(f"{path}: {why}")
    tar = path / f"{manifest['release']}.tar"
    if not tar.is_file() or tar.stat().st_size != manifest["bundle_bytes"]:
        raise FleetError(f"{tar}: missing or not the size the manifest says")
    return manifest, sig, tar


def manifest_topic(prefix: str, release: str) -> str:
    return f"{prefix}/releases/{release}/manifest"


def publish(mq: FleetMqtt, path: Path, out: Callable[[str], None]) -> dict[str, Any]:
    """Each chunk retained on `<prefix>/releases/<id>/<n>` (checked against the manifest), the manifest last, so a
    box that sees the manifest finds every chunk; every PUBACK is waited for."""
    manifest, sig, tar = read_bundle_dir(path)
    size = manifest["chunk_bytes"]
    if mq.max_packet is not None and size > mq.max_packet - PACKET_SLACK:
        raise FleetError(f"chunks of {size} bytes do not fit the broker's maximum packet of {mq.max_packet} "
                         f"bytes: rebuild with --chunk-bytes {mq.max_packet - PACKET_SLACK} or less")
    release = manifest["release"]
    total = len(manifest["chunks"])
    inflight: list[tuple[int, str]] = []
    with open(tar, "rb") as f:
        for n, want in enumerate(manifest["chunks"]):
            block = f.read(size)
            if hashlib.sha256(block).hexdigest() != want:
                raise FleetError(f"{tar}: chunk {n} does not match the manifest", 1)
            topic = f"{mq.prefix}/releases/{release}/{n}"
            inflight.append((mq.send(topic, block, retain=True), topic))
            if len(inflight) >= WINDOW:
                mq.wait_published(*inflight.pop(0))
            if (n + 1) % 20 == 0 or n + 1 == total:
                out(f"published {n + 1}/{total} chunks")
    for mid, topic in inflight:
        mq.wait_published(mid, topic)
    doc = json.dumps({"manifest": manifest, "manifest_sig": sig}, separators=(",", ":"))
    mq.publish(manifest_topic(mq.prefix, release), doc, retain=True)
    return {"release": release, "chunks": total, "bundle_bytes": manifest["bundle_bytes"],
            "manifest_topic": manifest_topic(mq.prefix, release)}


def published_manifest(mq: FleetMqtt, cfg: FleetCliConfig, release: str) -> tuple[dict[str, Any], str]:
    """The manifest as the boxes will see it on the broker, checked with the release key before anyone is told."""
    topic = manifest_topic(mq.prefix, release)
    mq.subscribe([topic])
    docs = [m.json() for m in mq.sync() if m.topic == topic]
    if not docs or not isinstance(docs[-1], dict):
        raise FleetError(f"release {release} is not published (no retained {topic}): run fleet release publish")
    manifest, sig = docs[-1].get("manifest"), docs[-1].get("manifest_sig")
    why = bundle.verify_manifest(manifest, sig, release_key(cfg).public_key())
    if why:
        raise FleetError(f"release {release} on the broker: {why}", 1)
    return manifest, sig
