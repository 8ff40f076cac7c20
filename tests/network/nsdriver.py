"""Run the real NetworkDriver inside a network namespace and watch what it emits from the test process.

Child side (`python -m tests.network.nsdriver CONFIG.json DATA_DIR`, started through `ip netns exec`):
runs the driver with a Context that prints every emit, set_link and health as one JSON line.
Parent side: `NsDriver` starts the child, collects those lines in a thread and waits on them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from tests.support.procs import stop_process
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


# --- child ------------------------------------------------------------------------------------------

def _child(config_path: str, data_dir: str) -> None:
    from agent.driver import Event, LinkState, Reading, health_text
    from agent.logs import setup_logging
    from drivers.network.config import NetworkConfig
    from drivers.network.driver import NetworkDriver
    from tests.support.context import RecordingContext

    setup_logging("INFO")
    cfg = NetworkConfig.model_validate(json.loads(Path(config_path).read_text()))

    def out(line_type: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"t": line_type, "mono": time.monotonic(), **fields}, default=str) + "\n")
        sys.stdout.flush()

    class PrintingContext(RecordingContext):
        async def emit(self, *items: Any) -> None:
            for item in items:
                if isinstance(item, Event):
                    out("event", kind=item.kind, data=item.data, severity=item.severity, ts=item.ts)
                elif isinstance(item, Reading):
                    out("reading", name=item.name, value=item.value, unit=item.unit, tags=item.tags)
            await super().emit(*items)

        def set_link(self, link: LinkState) -> None:
            out("link", name=link.name, metered=link.metered, defer_bulk=link.defer_bulk,
                slow_telemetry=link.slow_telemetry, budget_pct=link.budget_pct)
            super().set_link(link)

        def health(self, state: Any, detail: str = "", **params: Any) -> None:
            out("health", state=state, detail=health_text(detail, params))
            super().health(state, detail, **params)

    async def main() -> None:
        ctx = PrintingContext("network", cfg, Path(data_dir))
        task = asyncio.create_task(NetworkDriver().run(ctx))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        out("started")
        try:
            await task
        except asyncio.CancelledError:
            out("stopped")

    asyncio.run(main())


# --- parent -----------------------------------------------------------------------------------------

class NsDriver:
    """The driver running in namespace `ns`; `lines` holds everything it printed, in order."""

    def __init__(self, ns: str, config: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config_path = workdir / "network.json"
        self.config_path.write_text(json.dumps(config))
        self.data_dir = workdir / "data"
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.stderr = open(workdir / "driver.log", "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.network.nsdriver", str(self.config_path),
             str(self.data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.stderr)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda line: line["t"] == "started", timeout=30, what="driver start")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            with self._lock:
                self.lines.append(line)

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.lines)

    def events(self, kind: str, after: float = 0.0) -> list[dict[str, Any]]:
        return [x for x in self.records() if x["t"] == "event" and x["kind"] == kind and x["mono"] >= after]

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float, what: str,
                 after: float = 0.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"driver exited ({self.proc.returncode}): {self.log_tail()}")
            return next((x for x in self.records() if x["mono"] >= after and pred(x)), None)
        return wait_until(found, timeout=timeout, interval=0.02, what=what)

    def wait_event(self, kind: str, timeout: float, after: float = 0.0,
                   pred: Callable[[dict[str, Any]], bool] = lambda x: True) -> dict[str, Any]:
        return self.wait_for(lambda x: x["t"] == "event" and x["kind"] == kind and pred(x), timeout,
                             f"event {kind}", after)

    def log_tail(self) -> str:
        if not self.stderr.closed:
            self.stderr.flush()
        return (self.workdir / "driver.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_process(self.proc, 10)
        self._reader.join(5)
        self.stderr.close()


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
