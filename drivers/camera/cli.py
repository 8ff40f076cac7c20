"""`commune-agent cameras discover`, `camera snapshot NAME`, `camera analyze VIDEO` for technicians."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from drivers.camera.phases import Phase


def add_commands(subparsers: Any) -> None:
    cams = subparsers.add_parser("cameras", help="camera fleet commands")
    cams_sub = cams.add_subparsers(dest="cameras_command", required=True)
    disc = cams_sub.add_parser("discover", help="find ONVIF cameras by WS-Discovery")
    disc.add_argument("--interface", "-i", action="append", default=None,
                      help="interface to probe (repeatable; default: cameras.discovery_interfaces, else all)")
    disc.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for replies")
    disc.add_argument("--json", action="store_true", help="print JSON")
    disc.set_defaults(func=cmd_discover)

    cam = subparsers.add_parser("camera", help="one camera's commands")
    cam_sub = cam.add_subparsers(dest="camera_command", required=True)
    snap = cam_sub.add_parser("snapshot", help="grab one picture from a configured camera")
    snap.add_argument("name")
    snap.add_argument("--output", "-o", type=Path, help="JPEG file (default: NAME.jpg)")
    snap.add_argument("--masks", action="store_true", help="draw the motion masks on the picture")
    snap.set_defaults(func=cmd_snapshot)

    ana = cam_sub.add_parser("analyze", help="run the detector over a video file; print its events and why each fired")
    ana.add_argument("video", type=Path)
    ana.add_argument("--camera", help="use this camera's tuning from the config (default: built-in defaults)")
    ana.add_argument("--json", action="store_true", help="print one JSON document")
    ana.add_argument("--snapshots", type=Path, help="write each event's snapshot JPEG into this directory")
    ana.set_defaults(func=cmd_analyze)


def _section(args: argparse.Namespace) -> Any:
    from agent.config import load_or_exit

    cfg = load_or_exit(args.config)
    return cfg, getattr(cfg, "cameras", None)


def cmd_discover(args: argparse.Namespace) -> int:
    from drivers.camera.discovery import interface_addresses, probe

    names = args.interface
    if names is None and getattr(args, "config", None):
        _, section = _section(args)
        names = list(section.discovery_interfaces) if section else []
    pairs = interface_addresses(names or [])
    if not pairs:
        print(f"no IPv4 address on interface(s): {', '.join(names or ['any'])}", file=sys.stderr)
        return 1
    found = probe(pairs, args.timeout)
    if args.json:
        print(json.dumps([{"name": f.name, "hardware": f.hardware, "xaddrs": f.xaddrs, "address": f.address,
                           "interface": f.interface, "ip": f.source_ip} for f in found], indent=1))
        return 0
    if not found:
        print(f"no ONVIF device answered on {', '.join(n for n, _ in pairs)} within {args.timeout:g} s")
        return 0
    for f in found:
        xaddrs = " ".join(f.xaddrs)
        print(f"{f.source_ip:15}  {f.name or '-':20}  {f.hardware or '-':16}  {xaddrs}  (via {f.interface})")
    return 0


def _camera(section: Any, name: str) -> Any:
    cam = section.camera(name) if section else None
    if cam is None:
        known = ", ".join(c.name for c in section.devices) if section else "no cameras section"
        print(f"unknown camera {name!r} (configured: {known})", file=sys.stderr)
        raise SystemExit(2)
    return cam


def _resolve_url(cam: Any) -> str:
    from agent.section import read_secret
    from drivers.camera.onvif_client import OnvifClient, choose_profile, with_credentials

    password = read_secret(cam.password_file)
    if cam.rtsp_url:
        return with_credentials(cam.rtsp_url, cam.username, password)
    o = cam.onvif
    client = OnvifClient(o.host, o.port, cam.username, password, o.timeout_s)
    profile = choose_profile(client.profiles(), o.profile)
    return with_credentials(client.stream_uri(profile.token), cam.username, password)


def cmd_snapshot(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from drivers.camera.capture import RtspCapture
    from drivers.camera.onvif_client import OnvifError

    _, section = _section(args)
    cam = _camera(section, args.name)
    try:
        url = _resolve_url(cam)
    except OnvifError as exc:
        print(f"camera {cam.name}: {exc}", file=sys.stderr)
        return 1
    cap = RtspCapture(url, section.open_timeout_s, section.read_timeout_s)
    try:
        if not cap.open():
            print(f"camera {cam.name}: cannot open the stream (check address, credentials, firewall)", file=sys.stderr)
            return 1
        frame = None
        deadline = time.monotonic() + section.read_timeout_s + 2
        while frame is None and time.monotonic() < deadline:
            if cap.grab():
                frame = cap.retrieve()
    finally:
        cap.close()
    if frame is None:
        print(f"camera {cam.name}: no picture within {section.read_timeout_s:g} s", file=sys.stderr)
        return 1
    if args.masks:
        h, w = frame.shape[:2]
        for poly in cam.motion.masks:
            pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in poly], np.int32)
            cv2.polylines(frame, [pts], True, (0, 0, 255), max(1, w // 320))
    out = args.output or Path(f"{cam.name}.jpg")
    cv2.imwrite(str(out), frame)
    print(f"{out}  {frame.shape[1]}x{frame.shape[0]}")
    return 0


def analyze_video(video: Path, cam: Any, timezone: str = "UTC", snapshots: Path | None = None,
                  service: Any = None) -> dict[str, Any]:
    """Run the live pipeline on a file at detect fps; media time stands in for the clock. service: the
    `cameras.detector` settings; a camera on the shared detector is analysed with its size and crops."""
    from zoneinfo import ZoneInfo

    from drivers.camera.analyzer import Analyzer
    from drivers.camera.capture import file_frames
    from drivers.camera.config import DetectorServiceConfig
    from drivers.camera.events import CountOut, EventOut, SnapshotOut

    service = service or DetectorServiceConfig()
    cam = cam.model_copy(update={"armed": []})
    analyzer = Analyzer(cam, ZoneInfo(timezone), detector=_shared_locally(cam, service))
    events: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    shots = 0
    t0 = time.perf_counter()
    last_t = 0.0

    def take(outputs: list[Any]) -> None:
        nonlocal shots
        for o in outputs:
            if isinstance(o, EventOut):
                events.append({"kind": o.kind, "phase": o.phase, "event_id": o.event_id, "t": round(o.ts, 2),
                               **{k: v for k, v in o.data.items() if k not in ("phase", "event_id", "started_at")}})
            elif isinstance(o, CountOut):
                key = f"{o.line}/{o.label}/{o.direction}"
                counts[key] = counts.get(key, 0) + 1
            elif isinstance(o, SnapshotOut):
                shots += 1
                if snapshots is not None:
                    snapshots.mkdir(parents=True, exist_ok=True)
                    (snapshots / f"{o.kind}-{o.event_id}.jpg").write_bytes(o.jpeg)

    for t, frame in file_frames(str(video), cam.detect_fps):
        last_t = t
        take(analyzer.process(frame, t, t))
    take(analyzer.flush(last_t, last_t))
    return {"video": str(video), "camera": cam.name, "frames_analysed": analyzer.frames,
            "detector": analyzer.detector.name if analyzer.detector else None, "detector_warning": analyzer.warning,
            "detector_calls": analyzer.detector_calls, "recalibrations": analyzer.recalibrations, "counts": counts,
            "seconds": round(last_t, 2), "cpu_s": round(time.perf_counter() - t0, 2), "snapshots": shots,
            "events": events}


def _shared_locally(cam: Any, service: Any) -> Any:
    """The shared detector's network in this process for a camera that uses it live; None = the camera's own."""
    from drivers.camera.detector_service import YoloNet
    from drivers.camera.models import ModelError
    from drivers.camera.shared_detector import LocalDetector

    d = cam.detect
    if not (service.shared and d.enabled and d.detector == "yolo"):
        return None
    try:
        net = YoloNet(d.model_dir, service.input_size)
    except ModelError:
        return None  # the Analyzer's own loading falls back to HOG and says why
    return LocalDetector(d, service.input_size, service.max_crops, net)


def cmd_analyze(args: argparse.Namespace) -> int:
    from drivers.camera.config import CameraConfig

    if not args.video.is_file():
        print(f"no such video file: {args.video}", file=sys.stderr)
        return 2
    timezone = "UTC"
    service = None
    if args.camera:
        cfg, section = _section(args)
        cam = _camera(section, args.camera)
        timezone = cfg.site.timezone
        service = section.detector
    else:
        cam = CameraConfig(name="video", rtsp_url="rtsp://unused/")
    try:
        result = analyze_video(args.video, cam, timezone, args.snapshots, service)
    except OSError as exc:
        print(f"analyze: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{result['video']}: {result['frames_analysed']} frames over {result['seconds']} s, "
          f"{result['detector_calls']} {result['detector']} detector calls, "
          f"{result['recalibrations']} light recalibrations")
    if result["detector_warning"]:
        print(f"warning: {result['detector_warning']}")
    for e in result["events"]:
        print(f"{e['t']:8.2f}s  {e['kind']:15} {e['phase']:6} score={e['score']:<7} boxes={e['boxes']}")
        if e["phase"] in (Phase.START, Phase.ALERT) and e.get("reason"):
            print(f"           why: {e['reason']}")
    for key, n in sorted(result["counts"].items()):
        print(f"count {key}: {n}")
    return 0
