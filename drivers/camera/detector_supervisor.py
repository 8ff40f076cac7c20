"""The cameras family's shared detector process: started once, watched by its heartbeat, restarted with backoff.

While it is down (killed, crashed, wedged) the camera workers detect people with HOG by themselves; the outage
is kept (from, to, seconds) for health, the state file and telemetry, so the gap is visible afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from agent.backoff import Backoff
from agent.children import stop_child
from agent.logs import KvLogger
from drivers.camera.config import DetectorServiceConfig
from drivers.camera.models import ModelError, load_installed

REPO_ROOT = str(Path(__file__).resolve().parents[2])
OUTAGES = 10  # the latest outages kept for the state file
RECENT_S = 600.0  # health names an outage this long after it ended
START_S = 60.0  # planning the network on a busy box: silence this long before the first `ready` is a hang


class DetectorSupervisor:
    """Runs `python -m drivers.camera.detector_service`; `socket_name` is what the workers connect to."""

    def __init__(self, cfg: DetectorServiceConfig, model_dir: Path | None, log: KvLogger,
                 count: Any) -> None:
        self.cfg, self.model_dir, self.log, self.count = cfg, model_dir, log, count
        self.socket_name = f"commune-agent-detector-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self.restarts = 0
        self.down_since: float | None = None  # wall; set when a running service is lost, cleared when it is back
        self.outages: deque[dict[str, float]] = deque(maxlen=OUTAGES)
        self.last_beat = 0.0  # monotonic
        self.health: dict[str, Any] = {}
        self.failure: str | None = None  # what the service said when it could not load its network
        self.checked = asyncio.Event()  # set once the model is checked; `usable` says how it went
        self.usable = False  # the model is intact: without it each worker falls back to HOG and says why

    def argv(self) -> list[str]:
        c = self.cfg
        argv = [sys.executable, "-m", "drivers.camera.detector_service", "--name", self.socket_name,
                "--input-size", str(c.input_size), "--batch-max", str(c.batch_max),
                "--shed-after-ms", str(c.shed_after_ms)]
        return argv + (["--model-dir", str(self.model_dir)] if self.model_dir else [])

    async def run(self) -> None:
        """Check the model, then keep the service running until cancelled."""
        try:
            await asyncio.to_thread(load_installed, self.model_dir)
            self.usable = True
        except ModelError as exc:
            self.failure = str(exc)
            self.log.warning("detector_service_not_started", reason=self.failure)
        finally:
            self.checked.set()
        if not self.usable:
            return
        backoff = Backoff(0.5, 30.0, jitter=0.2)
        while True:
            t0 = time.monotonic()
            code = await self._run_once()
            if time.monotonic() - t0 > 60:
                backoff.reset()
            self.ready = False
            self.restarts += 1
            if self.down_since is None:
                self.down_since = time.time()
            self.count("detector_service_restarts")
            self.log.warning("detector_service_exited", code=code, restarts=self.restarts)
            await asyncio.sleep(backoff.next())

    async def _run_once(self) -> int | None:
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("MALLOC_ARENA_MAX", "2")  # one thread per camera connection: no 64 MB arena each
        self.proc = proc = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env)
        self.last_beat = time.monotonic()
        self.log.info("detector_service_started", pid=proc.pid, size=self.cfg.input_size)
        assert proc.stdout and proc.stderr
        tasks = [asyncio.create_task(self._read(proc.stdout)), asyncio.create_task(self._stderr(proc.stderr)),
                 asyncio.create_task(self._watch_hung(proc))]
        try:
            await tasks[0]
            return await proc.wait()
        finally:
            for t in tasks:
                t.cancel()
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()  # the service ends by itself on EOF
            await stop_child(proc)
            self.proc = None

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                self.count("bad_detector_message")
                continue
            if not isinstance(msg, dict):
                self.count("bad_detector_message")
                continue
            self.last_beat = time.monotonic()
            kind = msg.get("t")
            if kind == "ready":
                self._ready(msg)
            elif kind == "health":
                self.health = {k: v for k, v in msg.items() if k != "t"}
            elif kind == "failed":
                self.failure = str(msg.get("why"))[:300]
                self.log.error("detector_service_failed", reason=self.failure)

    def _ready(self, msg: dict[str, Any]) -> None:
        self.ready = True
        self.failure = None
        if self.down_since is not None:
            now = time.time()
            self.outages.append({"from": round(self.down_since, 3), "to": round(now, 3),
                                 "s": round(now - self.down_since, 1)})
            self.log.info("detector_service_back", down_s=round(now - self.down_since, 1))
            self.down_since = None
        self.log.info("detector_service_ready", pid=msg.get("pid"), size=msg.get("size"))

    async def _stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").strip()
            if text:
                self.log.debug("detector_service_stderr", line=text[:300])

    async def _watch_hung(self, proc: asyncio.subprocess.Process) -> None:
        while proc.returncode is None:
            await asyncio.sleep(0.5)
            if time.monotonic() - self.last_beat > (self.cfg.hung_after_s if self.ready else START_S):
                self.count("detector_service_hung")
                self.log.error("detector_service_hung", pid=proc.pid, silent_s=round(time.monotonic() -
                                                                                    self.last_beat, 1))
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return

    def recent_outage(self, now: float) -> dict[str, float] | None:
        """The latest outage if it ended within RECENT_S (wall time now)."""
        last = self.outages[-1] if self.outages else None
        return last if last is not None and now - last["to"] <= RECENT_S else None

    def state(self) -> dict[str, Any]:
        """For the state file: running, pid, restarts, since when down, the latest outages, the last heartbeat."""
        proc = self.proc
        return {"ready": self.ready, "pid": proc.pid if proc else None, "restarts": self.restarts,
                "down_since": self.down_since, "outages": list(self.outages), "failure": self.failure,
                "input_size": self.cfg.input_size, **self.health}
