"""Child processes ended on every path out of the code that started them.

One-shot commands (conntrack, hooks, ffmpeg remuxes and decodes, espeak-ng) go through run_child: their own process
group, a timeout, output kept to a bound, and on timeout or cancellation the whole group is killed and waited for.
Long-running children that stream to their owner (the camera worker, the clip ring recorder) are started by that
owner and ended by stop_child in its `finally`. A SIGKILL of the agent itself still leaves them to systemd's cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OUTPUT_BYTES = 64 * 1024  # per stream: what a caller reads (a JSON answer, an error line), never a log's worth
_CHUNK = 65536
_DRAIN_S = 2.0  # after a kill: how long the pipes may take to end (a grandchild that left the group)


@dataclass(frozen=True)
class ChildResult:
    """How a one-shot child ended: its exit code, the first bytes of its stdout, the last bytes of its stderr."""

    code: int
    stdout: bytes
    stderr: bytes

    def last_words(self, limit: int = 200) -> str:
        """The last non-empty stderr line (where ffmpeg and friends say why), or `exit N` when it said nothing."""
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return (lines[-1] if lines else f"exit {self.code}")[:limit]


class ChildTimeout(TimeoutError):
    """The child ran past its timeout; it and its process group have been killed and reaped."""

    def __init__(self, program: str, timeout: float) -> None:
        super().__init__(f"{program} took longer than {timeout:g}s")
        self.program, self.timeout = program, timeout


async def run_child(argv: Sequence[str], timeout: float, input: bytes | None = None, *,
                    env: Mapping[str, str] | None = None, capture_stdout: bool = True,
                    max_output: int = OUTPUT_BYTES) -> ChildResult:
    """Run argv (never a shell) to its end within `timeout` seconds, feeding `input` on stdin (else /dev/null).

    Raises OSError when it cannot start and ChildTimeout when it overruns; a timeout or a cancellation kills its
    process group (grandchildren included) and waits for it, so nothing runs on and no zombie is left. stdout keeps
    its first `max_output` bytes, stderr its last; the rest is read and dropped so the child never blocks on a pipe.
    """
    pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=pipe if input is not None else null, stdout=pipe if capture_stdout else null, stderr=pipe,
        env=dict(env) if env is not None else None, start_new_session=True)
    try:
        async with asyncio.timeout(timeout):
            _, out, err = await asyncio.gather(_feed(proc.stdin, input), _head(proc.stdout, max_output),
                                               _tail(proc.stderr, max_output))
            code = await proc.wait()
    except TimeoutError:
        await _kill_group(proc)
        raise ChildTimeout(os.path.basename(argv[0]), timeout) from None
    except BaseException:
        await _kill_group(proc)
        raise
    return ChildResult(code, out, err)


def run_child_sync(argv: Sequence[str], timeout: float, input: bytes | None = None, *,
                   env: Mapping[str, str] | None = None, capture_stdout: bool = True,
                   max_output: int = OUTPUT_BYTES) -> ChildResult:
    """run_child for blocking code in worker threads and CLIs (the broadcast's renders), on a loop of its own.

    A thread cannot be cancelled, so the timeout is what ends such a child; never call this on the event loop.
    """
    return asyncio.run(run_child(argv, timeout, input, env=env, capture_stdout=capture_stdout,
                                 max_output=max_output))


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stdin is None or data is None:
        return
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child stopped reading: its exit code and stderr say why
    finally:
        stdin.close()


async def _head(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    kept = bytearray()
    if stream is not None:
        while chunk := await stream.read(_CHUNK):
            kept += chunk[:max(0, limit - len(kept))]
    return bytes(kept)


async def _tail(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    kept = bytearray()
    if stream is not None:
        while chunk := await stream.read(_CHUNK):
            kept += chunk
            del kept[:max(0, len(kept) - limit)]
    return bytes(kept)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group (it leads one: start_new_session) and reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()  # the group is gone but the leader is not reaped yet: harmless, and certain
    await proc.wait()
    # the leader may have ended before its group: read the pipes out, so they and the transport close now
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_S):
            for stream in (proc.stdout, proc.stderr):
                while stream is not None and await stream.read(_CHUNK):
                    pass


async def stop_child(proc: asyncio.subprocess.Process, grace_s: float = 3.0) -> None:
    """End a long-running child: SIGTERM (ffmpeg closes its segment, the worker its capture), SIGKILL after grace_s;
    a second cancellation mid-cleanup still kills it before re-raising."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        async with asyncio.timeout(grace_s):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
