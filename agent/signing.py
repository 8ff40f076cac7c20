"""Ed25519 keys and signatures for changes (configuration, releases): only the COC holds the private keys,
so what is stolen from one box cannot forge a change for another."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_HEX = re.compile(r"[0-9a-f]{128}")


def canonical_json(data: Any) -> bytes:
    """The one byte form of a JSON document that is signed and verified: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def generate_private_key(path: Path) -> Ed25519PublicKey:
    """A new private key as PEM (mode 0600) next to its public key (`<path>.pub`); returns the public key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    public = key.public_key()
    path.with_name(path.name + ".pub").write_bytes(public_pem(public))
    return public


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_public_key(path: Path) -> Ed25519PublicKey:
    """A pinned public key (PEM); ValueError naming the file when it is anything else."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the public key: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: the public key is not an Ed25519 key")
    return key


def read_private_key(path: Path) -> Ed25519PrivateKey:
    """A signing key (PEM, unencrypted) for the COC's tools; ValueError naming the file when it is not one."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the private key: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: the private key is not an Ed25519 key")
    return key


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    return key.sign(data).hex()


def verify_bytes(key: Ed25519PublicKey, data: bytes, sig: Any) -> bool:
    """True only for a well-formed signature (128 lowercase hex digits) that the key made over data."""
    if not isinstance(sig, str) or not SIG_HEX.fullmatch(sig):
        return False
    try:
        key.verify(bytes.fromhex(sig), data)
    except InvalidSignature:
        return False
    return True
