"""Real TCP flows through the router for the balancing tests and benchmark.

Server (`python -m tests.network.flows serve PORT...`, in the internet namespace): on accept it tells the client
the address it sees (the router's NAT address = the link the flow left by), then acknowledges every chunk with
one byte. Client (`python -m tests.network.flows client ...`, in the LAN namespace): keeps N flows open at once,
each a run of chunk/ack exchanges; a missing ack within the timeout marks the flow broken. One JSON line per
finished flow: link address, bytes acknowledged, broken, longest gap between acks, start and end (monotonic).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")[0]
    try:
        writer.write(f"{peer}\n".encode())
        await writer.drain()
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(b".")  # one byte per read: the client waits for an ack per chunk
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(ports: list[int]) -> None:
    servers = [await asyncio.start_server(_serve_one, "0.0.0.0", p, reuse_address=True) for p in ports]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


async def _flow(dst: str, port: int, src: str | None, chunk: int, every: float, until: float,
                timeout: float) -> dict[str, object]:
    start = time.monotonic()
    rec: dict[str, object] = {"link": None, "bytes": 0, "broken": False, "max_gap_s": 0.0, "start": start}
    writer = None
    try:
        sock = socket.socket()
        sock.setblocking(False)
        if src:
            sock.bind((src, 0))
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (dst, port))
            reader, writer = await asyncio.open_connection(sock=sock)
            rec["link"] = (await reader.readline()).decode().strip()
        payload = b"x" * chunk
        last = time.monotonic()
        while time.monotonic() < until:
            writer.write(payload)
            async with asyncio.timeout(timeout):
                await writer.drain()
                got = 0
                while got < 1:
                    data = await reader.read(4096)
                    if not data:
                        raise ConnectionError("closed by the server")
                    got += len(data)
            now = time.monotonic()
            rec["max_gap_s"] = max(float(rec["max_gap_s"]), now - last)  # type: ignore[arg-type]
            last = now
            rec["bytes"] = int(rec["bytes"]) + chunk  # type: ignore[call-overload]
            await asyncio.sleep(every)
    except (TimeoutError, OSError) as exc:
        rec["broken"] = True
        rec["error"] = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    rec["end"] = time.monotonic()
    return rec


async def client(dst: str, port: int, flows: int, duration: float, flow_s: float, chunk: int, every: float,
                 src: str | None, timeout: float) -> None:
    end = time.monotonic() + duration

    async def slot() -> None:
        while time.monotonic() < end - 0.05:
            until = min(end, time.monotonic() + flow_s) if flow_s > 0 else end
            rec = await _flow(dst, port, src, chunk, every, until, timeout)
            print(json.dumps(rec), flush=True)

    print(json.dumps({"started": time.monotonic()}), flush=True)
    await asyncio.gather(*(slot() for _ in range(flows)))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("ports", type=int, nargs="+")
    c = sub.add_parser("client")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--flows", type=int, default=32)
    c.add_argument("--duration", type=float, default=10.0)
    c.add_argument("--flow-s", type=float, default=0.0, help="each flow's life; 0 = the whole duration")
    c.add_argument("--chunk", type=int, default=4096)
    c.add_argument("--every", type=float, default=0.05)
    c.add_argument("--src", default=None)
    c.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args()
    if a.cmd == "serve":
        asyncio.run(serve(a.ports))
    else:
        asyncio.run(client(a.dst, a.port, a.flows, a.duration, a.flow_s, a.chunk, a.every, a.src, a.timeout))


if __name__ == "__main__":
    sys.exit(main())
