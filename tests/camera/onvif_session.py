"""Run inside a private network namespace: an ipycam ONVIF device and our client side by side.

Prints one JSON object with what the client saw; the test asserts on it. Never run outside a
namespace: ipycam binds every interface and multicasts WS-Discovery Hello.
"""

from __future__ import annotations

import datetime as real_datetime
import json
import sys
import time
import types

import ipycam.onvif as ipy_onvif
from ipycam.config import CameraConfig as IpyConfig
from ipycam.discovery import WSDiscoveryServer
from ipycam.http import IPCameraHTTPHandler
from ipycam.onvif import ONVIFService

from drivers.camera.discovery import interface_addresses, probe
from drivers.camera.onvif_client import OnvifAuthError, OnvifClient, choose_profile


def skew_device_clock(offset_s: float) -> None:
    """Make the device's clock run offset_s ahead, for its replies and its token check alike."""
    real_time = ipy_onvif.time

    ipy_onvif.time = types.SimpleNamespace(gmtime=lambda: real_time.gmtime(real_time.time() + offset_s))

    class SkewedDatetime(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return real_datetime.datetime.now(tz) + real_datetime.timedelta(seconds=offset_s)

    ipy_onvif.datetime = SkewedDatetime


def start_device(port: int, user: str, password: str) -> None:
    import threading

    from ipycam.camera import ReusableThreadingTCPServer

    cfg = IpyConfig(name="cong-ubnd", local_ip="127.0.0.1", onvif_port=port, rtsp_port=8554)
    cfg.set_credentials(user, password)
    camera = types.SimpleNamespace(config=cfg, onvif=ONVIFService(cfg))
    WSDiscoveryServer(camera.onvif).start()
    IPCameraHTTPHandler.camera = camera
    server = ReusableThreadingTCPServer(("127.0.0.1", port), IPCameraHTTPHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def driver_view(port: int) -> dict:
    """What the driver's runner makes of this camera: stream URL with credentials, skew event."""
    import asyncio
    import tempfile
    from pathlib import Path

    from drivers.camera.camera import Camera
    from drivers.camera.config import CamerasConfig
    from drivers.camera.storage import Storage
    from tests.support.context import RecordingContext

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "pw").write_text("s3cret\n")
        cam = {"name": "gate", "username": "admin", "password_file": str(tmp / "pw"),
               "onvif": {"host": "127.0.0.1", "port": port}}
        cfg = CamerasConfig.model_validate({"devices": [cam]})
        ctx = RecordingContext("cameras", cfg, tmp / "data")
        runner = Camera(cfg.devices[0], cfg, ctx, Storage(ctx.data_dir, cfg.storage, ctx.log))
        url = asyncio.run(runner.source.resolve_url())
    return {"url": url, "events": [(e.kind, e.data) for e in ctx.events],
            "readings": [(r.name, r.value) for r in runner.readings() if r.name == "clock_skew_s"]}


def cli_discover() -> list:
    import argparse
    import contextlib
    import io

    from drivers.camera.cli import cmd_discover

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cmd_discover(argparse.Namespace(interface=["lo"], timeout=1.0, json=True, config=None))
    return json.loads(buf.getvalue())


def main() -> int:
    port, skew = int(sys.argv[1]), float(sys.argv[2])
    if skew:
        skew_device_clock(skew)
    start_device(port, "admin", "s3cret")
    out: dict = {}
    t0 = time.monotonic()
    found = probe(interface_addresses(["lo"]), timeout_s=1.0)
    out["probe_s"] = time.monotonic() - t0
    out["found"] = [{"address": f.address, "xaddrs": f.xaddrs, "name": f.name, "interface": f.interface}
                    for f in found]
    client = OnvifClient("127.0.0.1", port, "admin", "s3cret")
    out["info"] = client.device_info()
    profiles = client.profiles()
    out["profiles"] = [p.__dict__ for p in profiles]
    chosen = choose_profile(profiles, None)
    out["chosen"] = chosen.token
    out["stream_uri"] = client.stream_uri(chosen.token)
    out["main_uri"] = client.stream_uri(profiles[0].token)
    out["snapshot_uri"] = client.snapshot_uri(chosen.token)
    out["skew_s"] = client.clock_skew_s()
    out["driver"] = driver_view(port)
    out["cli_discover"] = cli_discover()
    try:
        OnvifClient("127.0.0.1", port, "admin", "wrong")
        out["wrong_password"] = "accepted"
    except OnvifAuthError as exc:
        out["wrong_password"] = str(exc)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
