"""The suite's speed rests on xdist's loadgroup: a module whose tests share a module-scoped fixture runs on one
worker, so its agent, network lab or browser starts once. A probe module on two workers shows it still does."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

PROBE = os.environ.get("SUITE_GROUP_PROBE") == "1"


@pytest.fixture(scope="module")
def shared() -> int:
    return os.getpid()


@pytest.mark.skipif(not PROBE, reason="the probe, run on two workers by the test below")
@pytest.mark.parametrize("n", range(4))
def test_probe(shared: int, n: int) -> None:
    assert shared == os.getpid()


@pytest.mark.skipif(PROBE, reason="not inside the probe")
def test_a_module_sharing_a_fixture_runs_on_one_worker() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
                          "-v", __file__, "-k", "probe"], env={**os.environ, "SUITE_GROUP_PROBE": "1"},
                         capture_output=True, text=True, timeout=120)
    workers = re.findall(r"\[(gw\d+)\] \[ *\d+%\] PASSED", out.stdout)
    assert len(workers) == 4 and len(set(workers)) == 1, out.stdout[-2000:]
