"""The demo: a local COC broker, simulated commune devices, the agent on config/demo.yaml, and a readable
view of what the COC receives. Ctrl-C (or --seconds) stops everything it started."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from tests.support.mosquitto import Broker  # noqa: E402
from tests.support.procs import stop_process  # noqa: E402

WORKDIR = Path("/tmp/commune-demo")
PORT = 18830
FAMILIES = ("network", "camera", "broadcast", "sensors", "signboard")
USERS = {"agent": "agent-pass", "coc": "coc-pass", "sensor": "sensor-pass"}
CONSOLE_LOGINS = (("canbo", "official", "demo-canbo-2026"), ("kythuat", "technician", "demo-kythuat-2026"))


def summarize(topic: str, payload: bytes) -> str | None:
    """One readable line per message; telemetry is condensed to names and values."""
    parts = topic.split("/")
    kind = parts[3] if len(parts) > 3 else topic
    if kind == "snapshot":
        return f"SNAPSHOT  {'/'.join(parts[4:])}  {len(payload)} bytes JPEG"
    try:
        body: Any = json.loads(payload)
    except ValueError:
        return f"{kind.upper():9} {topic} {len(payload)} bytes"
    if kind == "status":
        if body.get("online"):
            return f"BIRTH     boot={body['boot_id'][:8]} version={body['version']} drivers={','.join(body['drivers'])}"
        return f"OFFLINE   boot={body.get('boot_id', '')[:8]} {body.get('reason', '(last will)')}"
    if kind == "health":
        drivers = " ".join(f"{n}={d['state']}" for n, d in body.get("drivers", {}).items())
        sp = body.get("spool", {})
        return (f"HEALTH    {drivers}  spool={sp.get('spool_depth')} link={body.get('link', {}).get('name')} "
                f"uplink={body.get('uplink', {}).get('state')}")
    if kind == "telemetry":
        rs = body.get("readings", [])
        shown = ", ".join(f"{r['name']}{'[' + ','.join(r['tags'].values()) + ']' if r.get('tags') else ''}="
                          f"{r['value']}{r.get('unit') or ''}" for r in rs[:6])
        more = f" (+{len(rs) - 6} more)" if len(rs) > 6 else ""
        hist = " historical" if body.get("historical") else ""
        return f"TELEMETRY {parts[4]} seq={body.get('seq')}{hist}: {shown}{more}"
    if kind == "event":
        data = json.dumps(body.get("data", {}), ensure_ascii=False)
        return f"EVENT     {body.get('kind')} [{body.get('severity')}] from {body.get('source')}: {data[:220]}"
    if kind == "cmd" and topic.endswith("/result"):
        return f"RESULT    {parts[4]}: {json.dumps(body, ensure_ascii=False)[:200]}"
    return None


# what a newcomer should see at the COC, as (label, a piece of one summary line)
SHOWCASE = (
    ("birth", "BIRTH "), ("network links", "EVENT     link_up"), ("network telemetry", "TELEMETRY network"),
    ("camera motion", "EVENT     motion"), ("camera snapshot", "SNAPSHOT  "), ("bulletin aired", '"outcome": "played"'),
    ("loudspeaker unplugged", "EVENT     speaker_down"), ("airing it missed", '"outcome": "unreachable"'),
    ("loudspeaker back", "EVENT     speaker_up"),
    ("sensor alarm", "EVENT     sensor_alarm"), ("sensor telemetry", "TELEMETRY sensors"),
    ("every driver ok", "HEALTH    broadcast=ok cameras=ok console=ok host=ok network=ok sensors=ok"),
    ("signboards ok", "signboard=ok"),
)


class Showcase:
    """Ticks off SHOWCASE as lines reach the COC (from paho's thread); `--until-shown` stops once all are in."""

    def __init__(self) -> None:
        self.missing = {label: piece for label, piece in SHOWCASE}
        self.all_seen = threading.Event()
        self._lock = threading.Lock()

    def saw(self, line: str) -> None:
        with self._lock:
            for label, piece in list(self.missing.items()):
                if piece in line:
                    del self.missing[label]
            if not self.missing:
                self.all_seen.set()


def start_sims(workdir: Path, families: tuple[str, ...]) -> list[tuple[str, Callable[[], None]]]:
    stops = []
    for family in families:
        try:
            module = importlib.import_module(f"scripts.demo.sim_{family}")
        except ModuleNotFoundError as exc:
            print(f"demo: no simulator for {family} ({exc.name})", flush=True)
            continue
        try:
            stops.append((family, module.start(workdir)))
            print(f"demo: simulated {family} devices started", flush=True)
        except Exception as exc:  # one simulator failing must not spoil the rest of the demo
            print(f"demo: could not start the {family} simulator: {type(exc).__name__}: {exc}", flush=True)
    return stops


def port_free(port: int) -> bool:
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as mosquitto does: TIME_WAIT is fine
            probe.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


@contextmanager
def simulated_commune(families: tuple[str, ...] = FAMILIES) -> Iterator[None]:
    """The COC broker and the simulated devices the demo config points at; all stopped on exit."""
    if not port_free(PORT):
        raise SystemExit(f"demo: port {PORT} is in use (another demo still running?); stop it first")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    (WORKDIR / "agent.secret").write_text(USERS["agent"] + "\n")
    broker = Broker(WORKDIR / "mosquitto", users=USERS, port=PORT).start()
    print(f"demo: COC broker (mosquitto) on 127.0.0.1:{PORT}", flush=True)
    stops: list[tuple[str, Callable[[], None]]] = []
    try:
        stops = start_sims(WORKDIR, families)
        yield
    finally:
        for family, stop in reversed(stops):
            try:
                stop()
            except Exception as exc:
                print(f"demo: stopping {family}: {exc}", flush=True)
        broker.stop()


def agent_env() -> dict[str, str]:
    """The broadcast simulator points ALSA's default device at a WAV file through this HOME's .asoundrc."""
    home = WORKDIR / "broadcast" / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}


def console_logins(config: str) -> str | None:
    """Demo accounts for the web console (created once); returns its URL, or None when the config has none."""
    from agent.config import load
    from drivers.console.accounts import Accounts
    from drivers.console.cli import users_path

    cfg = load(config).config
    section = getattr(cfg, "console", None)
    if section is None or not section.enabled:
        return None
    accounts = Accounts(users_path(cfg))
    for name, role, password in CONSOLE_LOGINS:
        if accounts.get(name) is None:
            accounts.add(name, role, password)
    host = "127.0.0.1" if section.listen in ("0.0.0.0", "::") else section.listen
    return f"{'https' if section.tls_cert_file else 'http'}://{host}:{section.port}/"


def board_url(config: str, timeout: float = 20) -> str | None:
    """The demo screen board's page (the agent makes its secret when it first starts); None without signboards."""
    from agent.config import load
    from drivers.signboard.api import board_urls

    cfg = load(config).config
    section = getattr(cfg, "signboard", None)
    if section is None or not section.enabled:
        return None
    host = "127.0.0.1" if section.listen in ("0.0.0.0", "::") else section.listen
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        urls = board_urls(Path(cfg.data_dir), host, section.port)
        if urls:
            return next(iter(urls.values()))
        time.sleep(0.3)
    return None


def wait_console(url: str, timeout: float = 20) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "login", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=0, help="stop by itself after this long (0 = until Ctrl-C)")
    ap.add_argument("--config", default=str(ROOT / "config" / "demo.yaml"))
    ap.add_argument("--until-shown", action="store_true",
                    help="stop once every family has reached the COC (--seconds still caps the wait; exit 1 if not)")
    ap.add_argument("--no-browser", action="store_true", help="only print the console's address, open no browser")
    args = ap.parse_args()
    done = threading.Event()
    failed = False
    signal.signal(signal.SIGINT, lambda *a: done.set())
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    coc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-coc", protocol=mqtt.MQTTv5)
    coc.username_pw_set("coc", USERS["coc"])
    coc.on_connect = lambda c, u, f, rc, p=None: c.subscribe("commune/v1/#", qos=1)
    shown = Showcase()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        line = summarize(msg.topic, msg.payload)
        if line:
            print(f"COC <- {line}{'  (retained, from before)' if msg.retain else ''}", flush=True)
            if not msg.retain:
                shown.saw(line)

    coc.on_message = on_message
    with simulated_commune():
        console_url = console_logins(args.config)
        coc.connect("127.0.0.1", PORT)
        coc.loop_start()
        log = open(WORKDIR / "agent.log", "ab")
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "--config", args.config, "run"], cwd=ROOT,
                                 env=agent_env(), stdout=log, stderr=subprocess.STDOUT)
        print(f"demo: agent started (pid {agent.pid}, log {WORKDIR / 'agent.log'}); Ctrl-C to stop", flush=True)
        if console_url and wait_console(console_url):
            logins = ", ".join(f"{name} / {password} ({role})" for name, role, password in CONSOLE_LOGINS)
            print(f"demo: web console at {console_url}  log in as {logins}", flush=True)
            board = board_url(args.config)
            if board:
                print(f"demo: signboard at {board}  (a screen's page: open it full screen)", flush=True)
            if not args.no_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                import webbrowser

                webbrowser.open(console_url)  # a desktop is there: show the console; a headless box only prints
        elif console_url:
            print(f"demo: the web console did not answer at {console_url}; see {WORKDIR / 'agent.log'}", flush=True)
        started = time.monotonic()
        try:
            deadline = started + args.seconds if args.seconds else None
            while not done.is_set():
                if agent.poll() is not None:
                    print(f"demo: the agent exited with {agent.returncode}; see {WORKDIR / 'agent.log'}", flush=True)
                    return 1
                if args.until_shown and shown.all_seen.is_set():
                    print(f"demo: every family reached the COC in {time.monotonic() - started:.0f} s", flush=True)
                    break
                if deadline and time.monotonic() > deadline:
                    if args.until_shown:
                        print(f"demo: not shown within {args.seconds:.0f} s: {', '.join(shown.missing)}", flush=True)
                        failed = True
                    break
                done.wait(0.5)
        finally:
            if agent.poll() is None:
                stop_process(agent, 15)
            done.wait(0.5)  # let the offline status reach the screen
            coc.loop_stop()
    print("demo: stopped everything it started", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
