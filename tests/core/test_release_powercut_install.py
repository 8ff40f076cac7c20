"""Power cut (SIGKILL of the running service) at each step of an update's offline install: the box boots a working
release, finishes the change and reports it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.releasebox import Keys, power_cut_during_update


@pytest.mark.parametrize(("failpoint", "start"), [
    ("update.install.venv", 1),
    ("update.install.pip", 1),
    ("update.install.renamed", 1),
])
def test_power_cut(tmp_path: Path, release_base: Path, release_keys: Keys, failpoint: str, start: int) -> None:
    power_cut_during_update(tmp_path, release_base, release_keys, failpoint, start)
