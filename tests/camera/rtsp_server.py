#!/usr/bin/python3
"""A real RTSP server (GStreamer) looping raw BGR frames drawn by the tests, H.264 over RTSP.

Runs under /usr/bin/python3 (Debian's python3-gi), stdlib only: frames come pre-rendered in a file.
Usage: rtsp_server.py --port P --raw FILE --width W --height H --fps F [--path /cam]
Prints READY once listening; binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--bitrate", type=int, default=1500, help="kbit/s")
    args = ap.parse_args()

    size = args.width * args.height * 3
    with open(args.raw, "rb") as f:
        data = f.read()
    frames = [data[i:i + size] for i in range(0, len(data) - size + 1, size)]
    if not frames:
        print("no frames", file=sys.stderr)
        return 2

    Gst.init(None)
    caps = f"video/x-raw,format=BGR,width={args.width},height={args.height},framerate={args.fps}/1"
    launch = (f"( appsrc name=src is-live=true format=time caps={caps} ! videoconvert ! video/x-raw,format=I420 ! "
              f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} bitrate={args.bitrate} ! "
              "rtph264pay name=pay0 pt=96 config-interval=1 )")
    duration = Gst.SECOND // args.fps

    def on_configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name_recurse_up("src")
        state = {"n": 0}

        def need_data(appsrc: Gst.Element, _length: int) -> None:
            n = state["n"]
            buf = Gst.Buffer.new_wrapped(frames[n % len(frames)])
            buf.pts = n * duration
            buf.duration = duration
            state["n"] = n + 1
            appsrc.emit("push-buffer", buf)

        src.connect("need-data", need_data)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print("cannot bind", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
