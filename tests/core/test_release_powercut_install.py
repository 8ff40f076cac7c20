"""Power cut (SIGKILL of the running service) at each step of an update's offline install: the box boots a working
release, finishes the change and reports it once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.releasebox import Keys, ReleaseBox, power_cut_during_update
from tests.support.releases import make_layout


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_layout(tmp_path_factory.mktemp("layout") / "releases")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.mark.parametrize(("failpoint", "start"), [
    ("update.install.venv", 1),
    ("update.install.pip", 1),
    ("update.install.renamed", 1),
])
def test_power_cut(tmp_path: Path, base: Path, keys: Keys, failpoint: str, start: int) -> None:
    box = ReleaseBox(tmp_path, base, keys, f"pc{os.getpid()}", once_env={"COMMUNE_AGENT_FAILPOINT": failpoint},
                     once_start=start)
    try:
        power_cut_during_update(box, failpoint)
    finally:
        box.close()
