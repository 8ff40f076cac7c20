"""Stopping the servers and devices tests and the demo start: politely, then firmly."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:  # type: ignore[type-arg]
    """SIGTERM, wait up to timeout, then SIGKILL; harmless on a process that already exited."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
