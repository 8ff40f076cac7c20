"""Base for every config section: unknown keys are errors, secrets come only from files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

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


def read_secret(path: Path | None) -> str | None:
    """Read a secret file, dropping the trailing newline editors add."""
    if path is None:
        return None
    return path.read_text(encoding="utf-8").rstrip("\r\n")
