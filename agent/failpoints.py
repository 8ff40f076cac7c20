"""Named points where a test can cut the power: the process kills itself with SIGKILL when the environment
variable COMMUNE_AGENT_FAILPOINT names the point (guard.py keeps its own copy: it runs without this package)."""

from __future__ import annotations

import os
import signal

ENV = "COMMUNE_AGENT_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
