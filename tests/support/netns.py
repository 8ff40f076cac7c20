"""Run a function in a thread that lives in a network namespace the test made (setns moves one thread only).

Threads that thread starts (asyncio's executors, a driver's zone threads) are born in the same namespace, so an
in-process driver can sit on one end of a veth while the test process stays where it was.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Callable, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def run_in_netns(ns: str, fn: Callable[[], T], timeout: float = 120.0) -> T:
    """fn() in a new thread joined to /run/netns/<ns>; its result, or its exception raised here."""
    out: dict[str, object] = {}

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
        finally:
            os.close(fd)
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc

    t = threading.Thread(target=body, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"still running in netns {ns} after {timeout} s")
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]  # type: ignore[return-value]
