"""`commune-agent bulletin add|list|cancel|preview|log`: the radio operator's commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers.broadcast.bulletin import BulletinError, load_bulletin_file
from drivers.broadcast.config import BroadcastConfig

SECTION = "broadcast"


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("bulletin", help="radio bulletins: add, list, cancel, preview, as-run log")
    sub = p.add_subparsers(dest="bulletin_cmd", required=True)
    a = sub.add_parser("add", help="validate a bulletin YAML file and put it on the schedule")
    a.add_argument("file", type=Path)
    a.set_defaults(func=cmd_add)
    ls = sub.add_parser("list", help="scheduled bulletins with their next airing")
    ls.add_argument("--all", action="store_true", help="include cancelled bulletins")
    ls.set_defaults(func=cmd_list)
    c = sub.add_parser("cancel", help="take a bulletin off the schedule (stops it if on air)")
    c.add_argument("id")
    c.set_defaults(func=cmd_cancel)
    pv = sub.add_parser("preview", help="show the spoken text and render a bulletin to a WAV file")
    pv.add_argument("file", type=Path, help="bulletin YAML file")
    pv.add_argument("--out", type=Path, help="write the rendered speech here (WAV)")
    pv.add_argument("--engine", choices=["auto", "gtts", "espeak"], help="override the bulletin's engine")
    pv.set_defaults(func=cmd_preview)
    lg = sub.add_parser("log", help="the as-run log: what aired, where, when, how late")
    lg.add_argument("--limit", type=int, default=30)
    lg.add_argument("--id", dest="bulletin_id", help="only this bulletin")
    lg.add_argument("--json", action="store_true", help="one JSON object per line")
    lg.set_defaults(func=cmd_log)


def _load(args: argparse.Namespace) -> tuple[BroadcastConfig, Path, ZoneInfo]:
    from agent.config import load_section_or_exit

    cfg, section = load_section_or_exit(args.config, SECTION, "bulletin")
    return section, Path(cfg.data_dir) / SECTION, ZoneInfo(cfg.site.timezone)


def _section(args: argparse.Namespace) -> tuple[BroadcastConfig, Path]:
    section, data_dir, _ = _load(args)
    return section, data_dir


def _store(data_dir: Path) -> Any:
    from drivers.broadcast.store import DB_FILE, Store

    return Store(data_dir / DB_FILE)


def _fmt(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def cmd_add(args: argparse.Namespace) -> int:
    cfg, data_dir, tz = _load(args)
    try:
        b = load_bulletin_file(args.file, cfg.tts.max_chars)
        unknown = [z for z in b.zones or [] if z not in cfg.zones]
        if unknown:
            raise BulletinError(f"{args.file}: zones: unknown zone {unknown[0]!r} (configured: {', '.join(cfg.zones)})")
    except BulletinError as exc:
        print(f"bulletin error: {exc}", file=sys.stderr)
        return 2
    from drivers.broadcast.airtimes import local_iso, next_airings

    store = _store(data_dir)
    try:
        new = store.put(b, "cli")
        cursor = store.get(b.id).cursor
    finally:
        store.close()
    upcoming = [local_iso(a.scheduled, tz) for a in next_airings(b, tz, cursor, 0.0, 3)]
    print(f"{'added' if new else 'updated'} {b.id}: next airings {', '.join(upcoming) or 'none (all in the past)'}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, data_dir = _section(args)
    store = _store(data_dir)
    try:
        rows = store.all(include_cancelled=args.all)
    finally:
        store.close()
    try:
        state = json.loads((data_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {"bulletins": {}, "file_errors": {}}
    print(f"{'ID':24} {'PRIORITY':9} {'STATUS':9} {'ENGINE':7} {'NEXT AIRING':26} TITLE")
    for s in rows:
        live = state.get("bulletins", {}).get(s.bulletin.id, {})
        print(f"{s.bulletin.id:24} {s.bulletin.priority:9} {s.status:9} {live.get('engine') or '-':7} "
              f"{live.get('next') or '-':26} {s.bulletin.title}")
        if live.get("error"):
            print(f"  ! speech: {live['error']}")
    for path, error in state.get("file_errors", {}).items():
        print(f"! {error}" if error.startswith(path) else f"! {path}: {error}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    _, data_dir = _section(args)
    store = _store(data_dir)
    try:
        done = store.cancel(args.id)
    finally:
        store.close()
    if not done:
        print(f"bulletin: no active bulletin {args.id!r}", file=sys.stderr)
        return 1
    print(f"cancelled {args.id}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    cfg, data_dir = _section(args)
    from drivers.broadcast.lexicon import FILE as LEXICON_FILE
    from drivers.broadcast.lexicon import Lexicon
    from drivers.broadcast.tts import Synthesizer, TtsError

    try:
        b = load_bulletin_file(args.file, cfg.tts.max_chars)
    except BulletinError as exc:
        print(f"bulletin error: {exc}", file=sys.stderr)
        return 2
    synth = Synthesizer(cfg.tts, data_dir / "tts-cache", lexicon=Lexicon(data_dir / LEXICON_FILE))
    try:
        if b.text is not None:
            print(f"spoken text: {synth.spoken_text(b.text)}")
            r = synth.render_text(b.text, args.engine or b.engine, b.voice)
        else:
            r = synth.render_file(b.audio_file)  # type: ignore[arg-type]
    except TtsError as exc:
        print(f"speech error: {exc}", file=sys.stderr)
        return 1
    if args.out:
        args.out.write_bytes(r.path.read_bytes())
    print(f"engine: {r.engine}  duration: {r.duration_s:.1f} s  rendered in {r.seconds_taken:.2f} s"
          + (f"  -> {args.out}" if args.out else f"  ({r.path})"))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    _, data_dir = _section(args)
    store = _store(data_dir)
    try:
        rows = store.asrun(args.limit, args.bulletin_id)
    finally:
        store.close()
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return 0
    print(f"{'SCHEDULED':19} {'STARTED':19} {'LATE ms':>8} {'AIR s':>6} {'ZONE':10} {'OUTCOME':11} {'HEARD':13} "
          f"{'ENGINE':7} BULLETIN  REASON")
    for r in rows:
        late = f"{r['lateness_ms']:.0f}" if r["lateness_ms"] is not None else "-"
        air = f"{r['ended'] - r['started']:.1f}" if r["started"] is not None and r["ended"] is not None else "-"
        heard = f"{r['heard']} {r['level_dbfs']:g}" if r["heard"] in ("yes", "no") else (r["heard"] or "-")
        print(f"{_fmt(r['scheduled']):19} {_fmt(r['started']):19} {late:>8} {air:>6} {r['zone']:10} "
              f"{r['outcome']:11} {heard:13} {r['engine'] or '-':7} {r['bulletin_id']}  {r['reason'] or ''}")
    return 0
