"""Base for every config section: unknown keys are errors, secrets come only from files."""

from __future__ import annotations

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
