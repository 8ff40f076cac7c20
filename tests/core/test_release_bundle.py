"""Release bundles: only what differs from the base goes in, the signed manifest is what the box trusts, and a
tampered wheel or manifest is caught before anything is installed."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.bundle import build_bundle, chunk_offsets, unpack_bundle, verify_manifest, wheels_of
from agent.signing import generate_private_key, read_private_key, read_public_key


def _wheel(d: Path, name: str, version: str, body: bytes = b"x") -> Path:
    path = d / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", body)
    return path


def _key(tmp_path: Path) -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    generate_private_key(tmp_path / "release.key")
    return read_private_key(tmp_path / "release.key"), read_public_key(tmp_path / "release.key.pub")


def test_bundle_holds_only_the_wheels_that_differ_and_verifies(tmp_path: Path) -> None:
    key, pub = _key(tmp_path)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    for d in (old, new):
        _wheel(d, "paho_mqtt", "2.1.0")
    _wheel(old, "commune_agent", "0.1.0")
    _wheel(new, "commune_agent", "0.2.0", b"y" * 5000)
    _wheel(new, "psutil", "7.0.0")
    base, _, _ = build_bundle(old, tmp_path / "out", "r1", None, 1024, key)
    manifest, sig, bundle = build_bundle(new, tmp_path / "out", "r2", base, 1024, key)
    assert verify_manifest(manifest, sig, pub) is None
    assert sorted(manifest["included"]) == ["commune_agent-0.2.0-py3-none-any.whl", "psutil-7.0.0-py3-none-any.whl"]
    assert set(wheels_of(manifest)) == {p.name for p in new.glob("*.whl")}
    assert manifest["base"] == "r1" and manifest["version"] == "0.2.0"
    with tarfile.open(bundle) as tar:
        assert sorted(tar.getnames()) == sorted(manifest["included"])
    offsets = chunk_offsets(manifest)
    assert sum(n for _, n in offsets) == bundle.stat().st_size == manifest["bundle_bytes"]
    assert len(offsets) == len(manifest["chunks"]) and all(n <= 1024 for _, n in offsets)
    dest = tmp_path / "dest"
    dest.mkdir()
    assert unpack_bundle(bundle, manifest, dest) is None
    assert sorted(p.name for p in dest.iterdir()) == sorted(manifest["included"])


def test_a_changed_manifest_or_another_key_is_refused(tmp_path: Path) -> None:
    key, pub = _key(tmp_path)
    (tmp_path / "w").mkdir()
    _wheel(tmp_path / "w", "commune_agent", "0.1.0")
    manifest, sig, _ = build_bundle(tmp_path / "w", tmp_path / "out", "r1", None, 1024, key)
    changed = dict(manifest, version="9.9.9")
    assert "signature" in (verify_manifest(changed, sig, pub) or "")
    (tmp_path / "other").mkdir()
    generate_private_key(tmp_path / "other" / "k")
    other = read_private_key(tmp_path / "other" / "k")
    _, other_sig, _ = build_bundle(tmp_path / "w", tmp_path / "out2", "r1", None, 1024, other)
    assert "signature" in (verify_manifest(manifest, other_sig, pub) or "")
    assert verify_manifest(manifest, "zz", pub) is not None


def test_a_tampered_wheel_in_the_bundle_is_refused(tmp_path: Path) -> None:
    key, pub = _key(tmp_path)
    (tmp_path / "w").mkdir()
    wheel = _wheel(tmp_path / "w", "commune_agent", "0.1.0", b"good")
    manifest, sig, bundle = build_bundle(tmp_path / "w", tmp_path / "out", "r1", None, 1024, key)
    _wheel(tmp_path / "w", "commune_agent", "0.1.0", b"evil")  # same name and size, other bytes
    with tarfile.open(bundle, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.add(wheel, arcname=wheel.name)
    dest = tmp_path / "dest"
    dest.mkdir()
    assert "sha256" in (unpack_bundle(bundle, manifest, dest) or "")
    assert not list(dest.iterdir())
