"""`commune-agent fleet ...`: the COC operator's tool. Exit codes: 0 ok, 1 a rollout halted or an operation failed,
2 bad usage or config."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from agent.fleet import plans, release
from agent.fleet.config import FleetCliConfig, FleetError, load_fleet_config
from agent.fleet.enroll import BOX_DIR, enroll
from agent.fleet.live import ANSWER_S, ask_site, render_live
from agent.fleet.mqtt import FleetMqtt
from agent.fleet.rollout import Rollout, Runner, render_rollouts, render_status
from agent.fleet.sites import read_fleet, render_list, render_show
from agent.signing import generate_private_key


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--fleet-config", metavar="FILE", default=None,
                   help="fleet config (default $COMMUNE_FLEET_CONFIG, else ~/.config/commune-agent/fleet.yaml)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    return p


def _rollout_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sites", metavar="A,B,C", help="these sites, in this order (the first are the canaries)")
    g.add_argument("--all", action="store_true", help="every site the broker has a birth for")
    p.add_argument("--canaries", type=int, metavar="N", help="sites changed first, alone (fleet config default)")
    p.add_argument("--batch", type=int, metavar="N", help="sites changed at once after the canaries")
    p.add_argument("--max-failures", type=int, metavar="N", help="failed sites tolerated before it halts")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds a site may take to commit")


def add_commands(sub: Any) -> None:
    fleet = sub.add_parser("fleet", help="COC side: list sites, push config and releases in staged rollouts, enrol")
    fs = fleet.add_subparsers(dest="fleet_command", metavar="FLEET_COMMAND")
    fs.required = True
    p = _common(fs.add_parser("keygen", help="make the change and release key pairs (private halves stay here)"))
    p.add_argument("dir", type=Path)
    p.set_defaults(func=_wrap(cmd_keygen, needs_config=False))
    p = _common(fs.add_parser("list", help="every site: online, versions, link, last seen, drivers, change"))
    p.set_defaults(func=_wrap(cmd_list))
    p = _common(fs.add_parser("show", help="one site in detail (asks it for its bulletins, cameras, sensors, links)"))
    p.add_argument("site")
    p.add_argument("--wait", type=float, default=ANSWER_S, metavar="S",
                   help=f"seconds an online site has to answer the read commands (default {ANSWER_S:g}; 0: do not ask)")
    p.set_defaults(func=_wrap(cmd_show))

    cfg = fs.add_parser("config", help="configuration changes").add_subparsers(dest="fleet_config_command")
    cfg.required = True
    p = _common(cfg.add_parser("push", help="push a config (a file per site, or one patch) as a staged rollout"))
    src = p.add_mutually_exclusive_group()  # one of them: checked in the command, so the error is one line
    src.add_argument("--file", action="append", metavar="SITE=FILE", help="a whole agent.yaml for one site")
    src.add_argument("--patch", type=Path, metavar="PATCH.yaml", help="top-level sections to replace (null removes)")
    p.add_argument("--values", type=Path, metavar="VALUES.yaml", help="per-site values for ${site.KEY} in the patch")
    p.add_argument("--attach", action="append", default=[], metavar="NAME=FILE",
                   help="a file for <config dir>/pushed/NAME on the box; ${site.id} in FILE = one per site")
    p.add_argument("--gate", type=float, metavar="S", help="health gate on the box (default its fleet.gate_s)")
    _rollout_opts(p)
    p.set_defaults(func=_wrap(cmd_config_push))

    rel = fs.add_parser("release", help="release bundles").add_subparsers(dest="fleet_release_command")
    rel.required = True
    p = _common(rel.add_parser("build", help="build and sign a release bundle from a checkout"))
    p.add_argument("--checkout", type=Path, default=Path("."), help="the project's source tree (default .)")
    p.add_argument("--extras", default="all", help="extras installed on the boxes (default all, as install.sh)")
    p.add_argument("--wheels", type=Path, metavar="DIR", help="bundle these wheels instead of running pip wheel")
    p.add_argument("--find-links", type=Path, action="append", default=[], metavar="DIR", help="passed to pip")
    p.add_argument("--no-index", action="store_true", help="passed to pip: wheels only from --find-links")
    p.add_argument("--base", type=Path, metavar="MANIFEST", help="the boxes' release: its wheels are left out")
    p.add_argument("--out", type=Path, default=Path("releases"), help="bundles go to OUT/<release> (default "
                                                                       "./releases)")
    p.add_argument("--chunk-bytes", type=int, default=256 * 1024, help="transport chunk (default 256 KiB; at "
                                                                       "most the broker's max packet - 1 KiB)")
    p.add_argument("--release-id", help="default <version>-<YYYYmmddHHMMSS>")
    p.set_defaults(func=_wrap(cmd_release_build))
    p = _common(rel.add_parser("publish", help="put a bundle on the broker (retained chunks and manifest)"))
    p.add_argument("bundle_dir", type=Path)
    p.set_defaults(func=_wrap(cmd_release_publish))
    p = _common(rel.add_parser("push", help="offer a published release to sites as a staged rollout"))
    p.add_argument("release")
    p.add_argument("--urgent", action="store_true", help="download even over a metered link")
    _rollout_opts(p)
    p.set_defaults(func=_wrap(cmd_release_push))

    ro = fs.add_parser("rollout", help="rollouts: status, resume").add_subparsers(dest="fleet_rollout_command")
    ro.required = True
    p = _common(ro.add_parser("status", help="all rollouts, or one site by site"))
    p.add_argument("id", nargs="?")
    p.set_defaults(func=_wrap(cmd_rollout_status))
    p = _common(ro.add_parser("resume", help="go on with a stopped or halted rollout (no site gets it twice)"))
    p.add_argument("id")
    p.add_argument("--max-failures", type=int, metavar="N", help="raise the threshold of a halted rollout")
    p.set_defaults(func=_wrap(cmd_rollout_resume))

    p = _common(fs.add_parser("enroll", help="files for a new box and its broker login and ACL lines"))
    p.add_argument("site")
    p.add_argument("--coc-host", required=True, help="the broker as the box reaches it")
    p.add_argument("--coc-port", type=int, help="default 8883 with a CA, else 1883")
    p.add_argument("--ca-file", type=Path, help="CA of the broker (default the fleet config's broker.tls.ca_file)")
    p.add_argument("--name", default="", help="the commune's name")
    p.add_argument("--out", type=Path, help="where to write the box's files (default ./enroll-SITE)")
    p.add_argument("--box-dir", type=Path, default=BOX_DIR, help=f"where they go on the box (default {BOX_DIR})")
    p.set_defaults(func=_wrap(cmd_enroll))


def _wrap(fn: Callable[[argparse.Namespace, Any], int], needs_config: bool = True
          ) -> Callable[[argparse.Namespace], int]:
    """Load the fleet config, run the command, turn a FleetError into one line on stderr and its exit code."""
    def run(args: argparse.Namespace) -> int:
        try:
            cfg = load_fleet_config(args.fleet_config) if needs_config else None
            return fn(args, cfg)
        except FleetError as exc:
            print(f"fleet: {exc}", file=sys.stderr)
            return exc.code
    return run


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True))


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines: stdout for people, stderr with --json (stdout keeps only the JSON)."""
    stream = sys.stderr if args.json else sys.stdout

    def out(line: str) -> None:
        print(line, file=stream, flush=True)
    return out


def cmd_keygen(args: argparse.Namespace, cfg: None) -> int:
    made = {}
    for name in ("change", "release"):
        path = args.dir / f"{name}.key"
        try:
            generate_private_key(path)
        except FileExistsError:
            raise FleetError(f"{path} exists already: keys are never overwritten") from None
        except OSError as exc:
            raise FleetError(f"cannot write {path}: {exc.strerror or exc}") from None
        made[name] = {"private": str(path), "public": f"{path}.pub"}
    if args.json:
        _print_json(made)
    else:
        for name, p in made.items():
            print(f"{name} key: {p['private']} (keep at the COC)  public: {p['public']}")
        print("fleet.yaml: change_key_file and release_key_file name the private keys; "
              "`fleet enroll` puts the public ones on each box")
    return 0


def cmd_list(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    with FleetMqtt(cfg) as mq:
        sites = read_fleet(mq)
    rows = [s.summary() for s in sites.values()]
    if args.json:
        _print_json(rows)
    else:
        print(render_list(rows))
    return 0


def cmd_show(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    with FleetMqtt(cfg) as mq:
        sites = read_fleet(mq)
        site = sites.get(args.site)
        if site is None:
            raise FleetError(f"no site {args.site!r} on the broker (no retained status, health or change)", 1)
        drivers = site.health.get("drivers") if isinstance(site.health.get("drivers"), dict) else {}
        live = ask_site(mq, args.site, list(drivers), cfg.command_key_file, args.wait) \
            if site.status.get("online") and args.wait > 0 else None
    if args.json:
        _print_json({**site.summary(), "status": site.status, "health": site.health, "change_doc": site.change,
                     "live": live})
    else:
        print(render_show(site))
        if live is not None:
            lines = render_live(live)
            print("\n".join(lines) if lines else "live:     the site did not answer; shown from its retained documents")
    return 0


def _target_sites(args: argparse.Namespace, mq: FleetMqtt, given: list[str] | None = None) -> list[str]:
    if given is not None:
        return given
    if args.sites:
        sites = [s.strip() for s in args.sites.split(",") if s.strip()]
        if len(set(sites)) != len(sites):
            raise FleetError("--sites names a site twice")
        return sites
    if args.all:
        return [s for s, site in read_fleet(mq).items() if site.status]
    raise FleetError("which sites? give --sites A,B,C or --all")


def _start(args: argparse.Namespace, cfg: FleetCliConfig, mq: FleetMqtt, kind: str, command: str,
           sites: list[str], common: dict[str, Any], per_site: dict[str, dict[str, Any]]) -> int:
    d = cfg.rollout

    def pick(given: Any, default: Any) -> Any:
        return default if given is None else given

    for name in ("canaries", "batch", "max_failures", "timeout"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name in ("batch", "timeout") and value <= 0)):
            raise FleetError(f"--{name.replace('_', '-')} must be {'> 0' if name in ('batch', 'timeout') else '>= 0'}")
    r = Rollout.create(cfg, kind, command, sites, common, per_site, pick(args.canaries, d.canaries),
                       pick(args.batch, d.batch), pick(args.max_failures, d.max_failures),
                       pick(args.timeout, d.site_timeout_s))
    out = _progress(args)
    out(f"rollout {r.id}: {kind} to {len(sites)} sites")
    return _run(args, cfg, mq, r, out)


def _run(args: argparse.Namespace, cfg: FleetCliConfig, mq: FleetMqtt, r: Rollout, out: Callable[[str], None]) -> int:
    try:
        with r.lock():
            code = Runner(r, mq, cfg, out).run()
    except KeyboardInterrupt:
        out(f"stopped; go on with: commune-agent fleet rollout resume {r.id}")
        return 130
    if args.json:
        _print_json(r.summary())
    return code


def cmd_config_push(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    if not args.file and args.patch is None:
        raise FleetError("what to push? give --file SITE=FILE (repeated) or --patch PATCH.yaml")
    if args.file and (args.sites or args.all or args.values):
        raise FleetError("--file names its sites: --sites, --all and --values go with --patch")
    with FleetMqtt(cfg) as mq:
        if args.file:
            per_site = plans.whole_files(plans.pairs(args.file, "--file"))
            sites = _target_sites(args, mq, list(per_site))
        else:
            sites = _target_sites(args, mq)
            per_site = plans.patches(args.patch, args.values, sites)
        for site, files in plans.attachments(args.attach, sites).items():
            if files:
                per_site[site]["files"] = files
        common = {"gate_s": args.gate} if args.gate is not None else {}
        return _start(args, cfg, mq, "config", "config_apply", sites, common, per_site)


def cmd_release_build(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    info = release.build(cfg, args.wheels, args.checkout, args.extras, args.find_links, args.no_index, args.base,
                         args.out, args.chunk_bytes, args.release_id)
    if args.json:
        _print_json(info)
    else:
        print(f"release {info['release']}: {info['included']} of {info['wheels']} wheels, "
              f"{info['bundle_bytes']} bytes in {info['chunks']} chunks")
        print(f"bundle dir: {info['dir']}  next: commune-agent fleet release publish {info['dir']}")
    return 0


def cmd_release_publish(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    started = time.monotonic()
    with FleetMqtt(cfg) as mq:
        info = release.publish(mq, args.bundle_dir, _progress(args))
    info["seconds"] = round(time.monotonic() - started, 2)
    if args.json:
        _print_json(info)
    else:
        print(f"release {info['release']} published: {info['chunks']} chunks, {info['bundle_bytes']} bytes in "
              f"{info['seconds']} s")
    return 0


def cmd_release_push(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    with FleetMqtt(cfg) as mq:
        manifest, sig = release.published_manifest(mq, cfg, args.release)
        sites = _target_sites(args, mq)
        common = {"manifest": manifest, "manifest_sig": sig, "urgent": bool(args.urgent)}
        return _start(args, cfg, mq, "release", "update", sites, common, {})


def cmd_rollout_status(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    if args.id:
        r = Rollout.load(cfg, args.id)
        if args.json:
            _print_json(r.summary())
        else:
            print("\n".join(render_status(r)))
        return 0
    rollouts = Rollout.all(cfg)
    if args.json:
        _print_json([{k: v for k, v in r.summary().items() if k != "progress"} for r in rollouts])
    else:
        print("\n".join(render_rollouts(rollouts)))
    return 0


def cmd_rollout_resume(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    r = Rollout.load(cfg, args.id)
    if args.max_failures is not None:
        if args.max_failures < 0:
            raise FleetError("--max-failures must be >= 0")
        r.data["max_failures"] = args.max_failures
    if r.data["state"] == "done":
        raise FleetError(f"rollout {r.id} is done; nothing to resume", 1)
    out = _progress(args)
    out(f"rollout {r.id}: resuming ({r.counts()['not_sent']} sites not sent yet)")
    with FleetMqtt(cfg) as mq:
        return _run(args, cfg, mq, r, out)


def cmd_enroll(args: argparse.Namespace, cfg: FleetCliConfig) -> int:
    out = args.out or Path(f"enroll-{args.site}")
    e = enroll(cfg, args.site, args.name, args.coc_host, args.coc_port, args.ca_file, out, args.box_dir)
    if args.json:
        _print_json(e.as_json())
        return 0
    print(f"wrote {e.out}/")
    print(f"copy its files to {args.box_dir}/ on the box (keep their modes), then run")
    print("  commune-agent check-config && systemctl restart commune-agent")
    print("broker, mosquitto password_file (one line, then reload mosquitto):")
    print(f"  {e.password_line}")
    print("broker, mosquitto acl_file:")
    for line in e.acl:
        print(f"  {line}")
    return 0
