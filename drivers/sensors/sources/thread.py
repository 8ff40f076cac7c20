"""A source's own thread; an unexpected error is kept so the driver can crash and be restarted cleanly."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class SourceThread(ABC):
    """Subclasses implement _run(), looping until self._stop is set."""

    def __init__(self, thread_name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name=thread_name, daemon=True)
        self.failure: Exception | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug, not a device problem: surfaced by the driver loop as a crash
            self.failure = exc

    @abstractmethod
    def _run(self) -> None:
        """The source's loop; returns once self._stop is set."""
