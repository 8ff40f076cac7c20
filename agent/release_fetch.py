"""Fetching a release bundle over the uplink's own MQTT connection: the COC publishes it once, retained, in
chunks; the box takes a few chunk topics at a time, checks each chunk's sha256 and appends it to a .part file
that a restart resumes from."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable

from agent.bundle import chunk_offsets
from agent.failpoints import failpoint
from agent.logs import KvLogger
from agent.uplink import Uplink

WINDOW = 4  # chunk topics subscribed at once: the memory a fetch holds is about WINDOW x chunk_bytes
STALL_S = 30.0  # no chunk for this long while connected: subscribe to the window again
PROGRESS_S = 1.0
MAX_BAD = 3  # the same chunk arriving this often with bytes the signed manifest does not list: refused


class FetchError(Exception):
    """The bundle on the broker is not the one the signed manifest describes."""


def release_topic(prefix: str, release: str, suffix: str) -> str:
    return f"{prefix.rstrip('/')}/releases/{release}/{suffix}"


def resume_point(part: Path, manifest: dict[str, Any]) -> int:
    """How many chunks of the .part file are whole and match the manifest; the file is cut back to them."""
    chunks = manifest["chunks"]
    good = 0
    try:
        with open(part, "r+b") as f:
            for _off, length in chunk_offsets(manifest):
                block = f.read(length)
                if len(block) != length or hashlib.sha256(block).hexdigest() != chunks[good]:
                    break
                good += 1
            f.truncate(sum(n for _, n in chunk_offsets(manifest)[:good]))
    except FileNotFoundError:
        return 0
    return good


class ReleaseFetch:
    """One bundle's download; `paused()` true (a metered link) holds it between chunks."""

    def __init__(self, uplink: Callable[[], Uplink | None], prefix: str, manifest: dict[str, Any],
                 incoming: Path, log: KvLogger, progress: Callable[[int, int], None],
                 paused: Callable[[], bool] = lambda: False) -> None:
        self._uplink = uplink
        self.prefix = prefix
        self.manifest = manifest
        self.release = manifest["release"]
        self.part = incoming / f"{self.release}.part"
        self.done_path = incoming / f"{self.release}.tar"
        self.log = log
        self._progress = progress
        self._paused = paused
        self._arrived: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._subscribed: dict[int, Uplink] = {}
        self.bad_chunks = 0

    async def run(self) -> Path:
        """The whole bundle, checked chunk by chunk; waits (connected or not) until it is all there."""
        if self.done_path.is_file() and self.done_path.stat().st_size == self.manifest["bundle_bytes"]:
            return self.done_path
        self.part.parent.mkdir(parents=True, exist_ok=True)
        offsets = chunk_offsets(self.manifest)
        next_n = await asyncio.to_thread(resume_point, self.part, self.manifest)
        done_bytes = sum(n for _, n in offsets[:next_n])
        total = self.manifest["bundle_bytes"]
        self._progress(done_bytes, total)
        held: dict[int, bytes] = {}
        bad: dict[int, int] = {}
        last_chunk = time.monotonic()
        reported = 0.0
        try:
            with open(self.part, "ab") as out:
                while next_n < len(offsets):
                    if self._paused():
                        self._unsubscribe_all()
                        await asyncio.sleep(PROGRESS_S)
                        last_chunk = time.monotonic()
                        continue
                    self._keep_window(next_n, len(offsets))
                    try:
                        async with asyncio.timeout(PROGRESS_S):
                            n, payload = await self._arrived.get()
                    except TimeoutError:
                        up = self._uplink()
                        if up is not None and up.connected and time.monotonic() - last_chunk > STALL_S:
                            self.log.warning("release_chunk_stalled", release=self.release, chunk=next_n)
                            self._unsubscribe_all()  # the next pass subscribes again: retained chunks come anew
                            last_chunk = time.monotonic()
                        continue
                    if n < next_n or n in held:
                        continue
                    if hashlib.sha256(payload).hexdigest() != self.manifest["chunks"][n] \
                            or len(payload) != offsets[n][1]:
                        self.bad_chunks += 1
                        bad[n] = bad.get(n, 0) + 1
                        self.log.warning("release_chunk_bad", release=self.release, chunk=n, bytes=len(payload))
                        if bad[n] >= MAX_BAD:
                            raise FetchError(f"chunk {n} of the bundle does not match the signed manifest "
                                             f"({bad[n]} copies)")
                        self._unsubscribe(n)
                        continue
                    held[n] = payload
                    self._unsubscribe(n)
                    last_chunk = time.monotonic()
                    while next_n in held:
                        block = held.pop(next_n)
                        await asyncio.to_thread(_append, out, block)
                        done_bytes += len(block)
                        next_n += 1
                        failpoint("update.download.chunk")
                    if time.monotonic() - reported >= PROGRESS_S or next_n == len(offsets):
                        reported = time.monotonic()
                        self._progress(done_bytes, total)
        finally:
            self._unsubscribe_all()
        os.replace(self.part, self.done_path)
        self.log.info("release_fetched", release=self.release, bytes=total, bad_chunks=self.bad_chunks)
        return self.done_path

    def _keep_window(self, first: int, count: int) -> None:
        """Subscribed to chunks first..first+WINDOW-1 on the uplink in use now (a reload may replace it)."""
        up = self._uplink()
        if up is None:
            return
        for n, on in list(self._subscribed.items()):
            if on is not up:
                self._unsubscribe(n)
        for n in range(first, min(count, first + WINDOW)):
            if n not in self._subscribed:
                self._subscribed[n] = up
                up.subscribe(release_topic(self.prefix, self.release, str(n)), self._on_chunk)

    def _on_chunk(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            n = int(topic.rsplit("/", 1)[-1])
        except ValueError:
            return
        self._arrived.put_nowait((n, payload))

    def _unsubscribe(self, n: int) -> None:
        up = self._subscribed.pop(n, None)
        if up is not None:
            up.unsubscribe(release_topic(self.prefix, self.release, str(n)))

    def _unsubscribe_all(self) -> None:
        for n in list(self._subscribed):
            self._unsubscribe(n)


def _append(out: Any, block: bytes) -> None:
    out.write(block)
    out.flush()
    os.fsync(out.fileno())
