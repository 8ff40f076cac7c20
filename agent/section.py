"""Base for every config section: unknown keys are errors, secrets come only from files."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    """A config section; a typo in a key must fail loudly, never be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _readable_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file not readable: {path}")
    return path


SecretFile = Annotated[Path, AfterValidator(_readable_file)]
"""A path to a file holding a secret (password, key); the secret itself never sits in YAML."""


def _weekdays(v: list[int]) -> list[int]:
    if any(d < 1 or d > 7 for d in v):
        raise ValueError("weekdays are 1 (Monday) .. 7 (Sunday)")
    return v


Weekdays = Annotated[list[int], AfterValidator(_weekdays)]
"""Days of the week as a schedule names them: 1 = Monday .. 7 = Sunday."""


H = TypeVar("H", bound=Hashable)


def repeated(values: Iterable[H]) -> list[H]:
    """The values given more than once, sorted: what a "must be unique" check names in its error."""
    seen: set[H] = set()
    twice: set[H] = set()
    for v in values:
        (twice if v in seen else seen).add(v)
    return sorted(twice)  # type: ignore[type-var]


def check_mqtt_client(section: Any) -> None:
    """What every MQTT client section (the COC uplink, a local sensor broker) must get right together."""
    if section.password_file is not None and not section.username:
        raise ValueError("password_file needs username")
    if section.reconnect_max_s < section.reconnect_min_s:
        raise ValueError("reconnect_max_s must be >= reconnect_min_s")


def read_secret(path: Path | None) -> str | None:
    """Read a secret file, dropping the trailing newline editors add."""
    if path is None:
        return None
    return path.read_text(encoding="utf-8").rstrip("\r\n")


MIN_KEY_BYTES = 16


def read_key_file(path: Path) -> bytes:
    """The command signing key; fails closed with a message naming the file.

    The file holds one line: the key as text (at least 16 characters), or `hex:<digits>` or
    `base64:<text>` for a binary key. Surrounding whitespace and the final newline are ignored."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the key file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: the key file is binary; write the key as hex:<digits> or base64:<text>") from None
    if not text:
        raise ValueError(f"{path}: the key file is empty (signing would be off): put a key in it or remove "
                         "command_key_file")
    if not text.isprintable() or "\n" in text:
        raise ValueError(f"{path}: the key must be one line of printable text, hex:<digits> or base64:<text>")
    if text.startswith("hex:"):
        try:
            key = bytes.fromhex(text[4:])
        except ValueError:
            raise ValueError(f"{path}: not valid hex after 'hex:'") from None
    elif text.startswith("base64:"):
        try:
            key = base64.b64decode(text[7:], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{path}: not valid base64 after 'base64:'") from None
    else:
        key = text.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{path}: the key is {len(key)} bytes; use at least {MIN_KEY_BYTES}")
    return key
