"""The agent's own MQTT bytes on the wire: the simulated commune with every family on, at the example's default
rates (the demo config with its faster rates taken out), the agent's connection to the COC broker through a
counting TCP relay, and the COC's view of which topics the bytes went to. Extrapolated to a day.

Two scenes: `quiet` (no outages, an empty street: what a box costs standing, most of a day) and `busy` (the
demo's: a person crosses every 16 s and the 4G link fails for 20 s of every 50 — far more than a real day).
  python -m scripts.demo.wire_bytes [--seconds 180] [--scene quiet|busy]     prints one JSON line"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from scripts.demo.run import PORT, ROOT, USERS, WORKDIR, agent_env, simulated_commune
from scripts.demo.sim_network import SCENE_ENV
from tests.support.procs import stop_process

DAY_S = 86400.0
# the demo's own speed-ups: without them every option is what the example config says
DEMO_RATES = {"interval_s", "report_interval_s", "health_interval_s", "update_every_s", "flush_interval_s"}
WARMUP_S = 20.0  # birth, retained state and first readings: a start's cost, not a day's


def default_rates(node: Any) -> Any:
    """The demo config without the keys that only make it faster than a real box."""
    if isinstance(node, dict):
        return {k: default_rates(v) for k, v in node.items() if k not in DEMO_RATES}
    if isinstance(node, list):
        return [default_rates(v) for v in node]
    return node


class CountingRelay:
    """A TCP relay on loopback that counts the bytes each way (the MQTT packets, both directions)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = self.down = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CountingRelay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upward: bool) -> None:
            try:
                while data := await src.read(65536):
                    if upward:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_w, True), pump(up_r, writer, False))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def topic_class(topic: str) -> str:
    parts = topic.split("/")
    kind = parts[3] if len(parts) > 3 else topic
    return f"{kind}/{parts[4]}" if kind in ("telemetry", "event") and len(parts) > 4 else kind


def measure(seconds: float, scene: str = "quiet") -> dict[str, Any]:
    """Run the commune for WARMUP_S + seconds; the figures per day come from the last `seconds` only."""
    os.environ[SCENE_ENV] = scene
    cfg = default_rates(yaml.safe_load((ROOT / "config" / "demo.yaml").read_text()))
    relay = CountingRelay(PORT)
    per_topic: Counter[str] = Counter()
    counting = threading.Event()

    keys: dict[tuple[str, str, str], int] = {}  # every reading seen: its size on the wire in a message
    health_bytes: list[int] = []

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            return
        if msg.topic.endswith("/health"):
            health_bytes.append(len(msg.payload) + len(msg.topic) + 4)
        if "/telemetry/" in msg.topic:
            for r in json.loads(msg.payload).get("readings", []):
                key = (msg.topic, str(r.get("name")), json.dumps(r.get("tags"), sort_keys=True))
                keys[key] = len(json.dumps(r, separators=(",", ":"))) + 1
        if counting.is_set():
            per_topic[topic_class(msg.topic)] += len(msg.payload) + len(msg.topic) + 4

    with simulated_commune():
        relay.start()
        cfg["coc"]["port"] = relay.port
        path = WORKDIR / "wire-bytes.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
        coc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="wire-bytes-coc", protocol=mqtt.MQTTv5)
        coc.username_pw_set("coc", USERS["coc"])
        coc.on_connect = lambda c, u, f, rc, p=None: c.subscribe("commune/v1/#", qos=1)
        coc.on_message = on_message
        coc.connect("127.0.0.1", PORT)
        coc.loop_start()
        log = open(WORKDIR / "wire-bytes-agent.log", "ab")
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "--config", str(path), "run"], cwd=ROOT,
                                 env=agent_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(WARMUP_S)
            up0, down0 = relay.up, relay.down
            counting.set()
            t0 = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            up, down = relay.up - up0, relay.down - down0
        finally:
            stop_process(agent, 15)
            coc.loop_stop()
            relay.stop()
    scale = DAY_S / elapsed / 1e6
    # the heartbeats (every reading each telemetry.heartbeat_s, the health each coc.health_interval_s) fire too
    # seldom to show in a short window: added here in full, as if none of them were sent for a change anyway
    beats = (sum(keys.values()) * DAY_S / cfg.get("telemetry", {}).get("heartbeat_s", 900.0)
             + (max(health_bytes) if health_bytes else 0) * DAY_S / cfg["coc"].get("health_interval_s", 600.0)) / 1e6
    return {"agent_uplink_mb_per_day": round((up + down) * scale + beats, 1),
            "agent_uplink_heartbeats_mb_per_day": round(beats, 2),
            "agent_uplink_up_mb_per_day": round(up * scale, 1),
            "agent_uplink_by_topic_mb_per_day": {k: round(v * scale, 2) for k, v in per_topic.most_common()},
            "agent_uplink_measured_s": round(elapsed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--scene", choices=("quiet", "busy"), default="quiet")
    args = ap.parse_args()
    print(json.dumps(measure(args.seconds, args.scene)))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
