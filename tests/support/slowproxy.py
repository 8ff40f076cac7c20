"""A slow link on loopback: a TCP proxy forwarding at most N bytes/s each way (a 4G backup, a busy modem).

It runs as its own process so its pacing never shares an event loop (or the GIL) with the code under test:
`python -m tests.support.slowproxy --target-port P --rate BYTES_PER_S` prints its listening port."""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.procs import stop_process

PIECE = 4096  # bytes forwarded per step: the link's granularity
SMALL_BUFFER = 64 * 1024  # kernel buffers on the proxy's sockets: a modem's, not loopback's megabytes


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float) -> None:
    """Copy one direction at `rate` bytes/s on average: each piece goes out once the link's time for it has come."""
    due = time.monotonic()
    try:
        while data := await reader.read(PIECE):
            now = time.monotonic()
            due = max(due, now) + len(data) / rate
            writer.write(data)
            await writer.drain()
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _shrink(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)


async def serve(target_port: int, rate: float, port: int = 0) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        _shrink(writer)
        _shrink(up_w)
        await asyncio.gather(_pump(reader, up_w, rate), _pump(up_r, writer, rate))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class SlowProxy:
    """The proxy as a child process: `port` is where clients connect; stopped by its PID."""

    def __init__(self, target_port: int, rate_bytes_s: float) -> None:
        root = str(Path(__file__).resolve().parents[2])
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.slowproxy", "--target-port",
                                      str(target_port), "--rate", str(rate_bytes_s)],
                                     stdout=subprocess.PIPE, cwd=root, start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the port, once it listens
        if not line.strip().isdigit():
            stop_process(self.proc)
            raise RuntimeError(f"slow proxy did not start: {line!r}")
        self.port = int(line)

    def stop(self) -> None:
        stop_process(self.proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="bytes per second, each way")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    asyncio.run(serve(args.target_port, args.rate, args.port))


if __name__ == "__main__":
    main()
