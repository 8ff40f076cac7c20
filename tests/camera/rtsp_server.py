#!/usr/bin/python3
"""A real RTSP server (GStreamer) looping raw BGR frames drawn by the tests, H.264 over RTSP.

Runs under /usr/bin/python3 (Debian's python3-gi), stdlib only: frames come pre-rendered in a file.
Usage: rtsp_server.py --port P --raw FILE --width W --height H --fps F [--path /cam] [--h264]
       [--mount /cam2=FILE2[,delay=S][,loop=S] ...] (more mounts in the same process; a file named twice is
       loaded once; delay holds its first picture S seconds before it plays, loop holds its last one until the
       loop is S seconds long: a mover every S seconds without S seconds of pictures on disk)
With --h264 the files are H.264 already (Annex B, an AUD before each picture, a key frame every second, as
`servers.encode_h264` writes them): the server only packs them into RTP, so many streams cost it nearly nothing,
and delay/loop repeat the first/last second. Prints READY once listening, then `MEDIA PATH T` (T: CLOCK_MONOTONIC)
each time a mount's stream starts from its first picture; binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

AUD = b"\x00\x00\x00\x01\x09"  # the access unit delimiter x264 puts before each picture (aud=1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--bitrate", type=int, default=1500, help="kbit/s")
    ap.add_argument("--mount", action="append", default=[], help="PATH=RAW: one more mount looping RAW")
    ap.add_argument("--h264", action="store_true", help="the files are encoded H.264, one key frame a second")
    args = ap.parse_args()

    size = args.width * args.height * 3
    loaded: dict[str, list[bytes]] = {}
    mounts: list[tuple[str, str, dict[str, float]]] = [(args.path, args.raw, {})]
    for m in args.mount:
        path, _, spec = m.partition("=")
        raw, *opts = spec.split(",")
        mounts.append((path, raw, {k: float(v) for k, v in (o.split("=", 1) for o in opts)}))
    for _, raw, _ in mounts:
        if raw in loaded:
            continue
        with open(raw, "rb") as f:
            data = f.read()
        if args.h264:
            loaded[raw] = [AUD + au for au in data.split(AUD)[1:]]
        else:
            same: dict[bytes, bytes] = {}  # a still street repeats one picture: keep it once
            loaded[raw] = [same.setdefault(f, f) for f in (data[i:i + size] for i in range(0, len(data) - size + 1,
                                                                                           size))]
        if not loaded[raw]:
            print("no frames", file=sys.stderr)
            return 2

    Gst.init(None)
    if args.h264:
        caps = (f"video/x-h264,stream-format=byte-stream,alignment=au,width={args.width},height={args.height},"
                f"framerate={args.fps}/1")
        launch = (f"( appsrc name=src is-live=true format=time caps={caps} ! h264parse config-interval=-1 ! "
                  "rtph264pay name=pay0 pt=96 )")
    else:
        caps = f"video/x-raw,format=BGR,width={args.width},height={args.height},framerate={args.fps}/1"
        launch = (f"( appsrc name=src is-live=true format=time caps={caps} ! videoconvert ! video/x-raw,format=I420 "
                  f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} bitrate={args.bitrate} ! "
                  "rtph264pay name=pay0 pt=96 config-interval=1 )")
    duration = Gst.SECOND // args.fps

    def on_configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia,
                     frames: list[bytes], path: str) -> None:
        src = media.get_element().get_by_name_recurse_up("src")
        print(f"MEDIA {path} {time.monotonic():.3f}", flush=True)
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
    for path, raw, opts in mounts:
        frames = loaded[raw]
        # an encoded picture depends on those before it: hold a whole second (a key frame and its followers)
        first, last = (frames[:args.fps], frames[-args.fps:]) if args.h264 else (frames[:1], frames[-1:])
        frames = first * round(opts.get("delay", 0) * args.fps / len(first)) + frames
        while len(frames) < round(opts.get("loop", 0) * args.fps):
            frames = frames + last
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        factory.connect("media-configure", on_configure, frames, path)
        server.get_mount_points().add_factory(path, factory)
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
