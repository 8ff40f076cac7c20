"""Power cut (SIGKILL of the running service) at each step of an update's switch and commit: the box boots a working
release, finishes the change and reports it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.releasebox import Keys, power_cut_during_update


@pytest.mark.parametrize(("failpoint", "start"), [
    ("update.trial.written", 1),
    ("guard.pre.counted", 2),
    ("guard.pre.switched", 2),
    ("update.commit.state", 2),
    ("update.commit.linked", 2),
])
def test_power_cut(tmp_path: Path, release_base: Path, release_keys: Keys, failpoint: str, start: int) -> None:
    power_cut_during_update(tmp_path, release_base, release_keys, failpoint, start)
