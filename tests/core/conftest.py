"""Fixtures the self-update modules share: one release layout and one pair of COC keys per module (a module
that uses them stays on one test worker, so the layout is built once there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.releasebox import Keys
from tests.support.releases import make_layout


@pytest.fixture(scope="module")
def release_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_layout(tmp_path_factory.mktemp("layout") / "releases")


@pytest.fixture(scope="module")
def release_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))
