"""One camera's worker process seen from the agent: start it, read its lines, ask it things, kill it when it hangs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from pathlib import Path

from agent.children import stop_child
from agent.driver import CommandError
from agent.logs import KvLogger
from drivers.camera.protocol import Dispatcher, Heartbeat, Reply, snapshot_request
from drivers.camera.worker import WorkerSpec

REPO_ROOT = str(Path(__file__).resolve().parents[2])
LINE_LIMIT = 32 * 1024 * 1024  # a base64 snapshot is one line
HUNG_AFTER_S = 15.0  # no heartbeat this long = the worker is wedged: kill it


class WorkerProcess:
    """Runs `python -m drivers.camera.worker` once per `run`; its stdout lines go to the dispatcher."""

    def __init__(self, camera: str, dispatcher: Dispatcher, log: KvLogger) -> None:
        self.camera = camera
        self.dispatcher = dispatcher
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.last_heartbeat = 0.0  # monotonic
        self.ffmpeg_errors = 0  # decode complaints on the worker's stderr
        self.replies: dict[str, asyncio.Future[Reply]] = {}

    @property
    def running(self) -> bool:
        proc = self.proc
        return proc is not None and proc.stdin is not None and proc.returncode is None

    async def run(self, spec: WorkerSpec) -> int | None:
        """Start the worker with its spec and serve it until its stdout ends; its exit code."""
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # a decoded 720p picture is 2.7 MB: with a fixed threshold each is mapped and given back when freed, not
        # left to grow the heap; and a few threads need no arena (64 MB of address space, some resident) each
        env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
        env.setdefault("MALLOC_ARENA_MAX", "2")
        # not run_child: the worker lives as long as the camera and talks over its pipes line by line; the `finally`
        # below ends it through stop_child (stdin closed, SIGTERM, then SIGKILL) on every way out, cancel included
        self.proc = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "drivers.camera.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, limit=LINE_LIMIT)
        self.last_heartbeat = time.monotonic()
        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(spec.to_json().encode() + b"\n")
        await proc.stdin.drain()
        self.log.info("worker_started", camera=self.camera, pid=proc.pid)
        tasks = [asyncio.create_task(self._read_stdout(proc.stdout)),
                 asyncio.create_task(self._read_stderr(proc.stderr)), asyncio.create_task(self._watch_hung(proc))]
        try:
            await tasks[0]
            return await proc.wait()
        finally:
            for t in tasks:
                t.cancel()
            await self._stop(proc)
            self.proc = None
            for fut in self.replies.values():
                if not fut.done():
                    fut.set_exception(CommandError(f"camera {self.camera}: worker restarted"))
            self.replies.clear()

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()  # a worker reading its stdin ends by itself on EOF
        await stop_child(proc)

    async def on_heartbeat(self, msg: Heartbeat) -> None:
        """A heartbeat: the worker is not wedged."""
        self.last_heartbeat = time.monotonic()

    async def on_reply(self, msg: Reply) -> None:
        fut = self.replies.pop(msg.request, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def ask_snapshot(self, timeout_s: float) -> Reply:
        """A fresh picture from the worker; TimeoutError if none comes within timeout_s."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None, "ask only a running worker"
        request = uuid.uuid4().hex
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.replies[request] = fut
        proc.stdin.write(snapshot_request(request))
        await proc.stdin.drain()
        try:
            async with asyncio.timeout(timeout_s):
                return await fut
        except TimeoutError:
            self.replies.pop(request, None)
            raise

    async def _watch_hung(self, proc: asyncio.subprocess.Process) -> None:
        while proc.returncode is None:
            await asyncio.sleep(1.0)
            if time.monotonic() - self.last_heartbeat > HUNG_AFTER_S:
                self.log.error("worker_hung", camera=self.camera, pid=proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        """FFmpeg and Python write here; keep the log short and count decode complaints."""
        while line := await stream.readline():
            text = line.decode(errors="replace").strip()
            if "error while decoding" in text or "corrupt" in text.lower():
                self.ffmpeg_errors += 1
            elif text:
                self.log.debug("worker_stderr", camera=self.camera, line=text)

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        """Hand the worker's messages to the dispatcher until EOF."""
        while line := await stream.readline():
            await self.dispatcher.feed(line)
