"""A real mosquitto on loopback, started and stopped by the tests, plus a recording client."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.support.ports import free_port
from tests.support.procs import stop_process
from tests.support.wait import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """mosquitto with password auth and an ACL; users maps name -> password."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None, port: int | None = None,
                 tls: dict[str, Path] | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.users = users if users is not None else {"agent": "agent-pass", "coc": "coc-pass"}
        self.port = port or free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_files()

    def _write_files(self) -> None:
        pw = self.dir / "passwd"
        pw.write_text("")
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        acl = self.dir / "acl"
        acl.write_text("pattern readwrite #\n")
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            # as root mosquitto would drop to its own user, which cannot enter pytest's 0700 dirs
            "user root" if os.geteuid() == 0 else "",
            "per_listener_settings false",
            f"persistence true\npersistence_location {data}/",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            f"listener {self.port} 127.0.0.1",
        ]
        lines += ["allow_anonymous false", f"password_file {pw}"]
        if self.tls:
            # a second listener where clients log in with a certificate (its CN is the username)
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.tls['ca']}",
                      f"certfile {self.tls['cert']}", f"keyfile {self.tls['key']}",
                      "require_certificate true", "use_identity_as_username true"]
        lines.append(f"acl_file {acl}")
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> Broker:
        log = open(self.dir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")],
                                     stdout=log, stderr=log, start_new_session=True)
        wait_until(self._accepting, timeout=10, what=f"mosquitto on port {self.port}")
        return self

    def _accepting(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {(self.dir / 'mosquitto.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc)
        self.proc = None

    def password_file(self, user: str) -> Path:
        path = self.dir / f"{user}.secret"
        path.write_text(self.users[user] + "\n")
        return path


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    properties: Any = None

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Recorder:
    """A COC-side client that records every message it sees on its subscriptions."""

    port: int
    user: str = "coc"
    password: str = "coc-pass"
    topics: tuple[str, ...] = ("#",)
    persistent: bool = False  # keep a broker-side session so nothing is missed while it reconnects
    messages: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  protocol=mqtt.MQTTv5, client_id=f"recorder-{time.monotonic_ns()}")
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.username_pw_set(self.user, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            return
        if not (self.persistent and flags.session_present):
            for t in self.topics:
                client.subscribe(t, qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(msg.topic, msg.payload, bool(msg.retain), msg.qos,
                                         getattr(msg, "properties", None)))

    def start(self) -> Recorder:
        props = None
        if self.persistent:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", self.port, keepalive=30, clean_start=not self.persistent,
                            properties=props)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise AssertionError("recorder could not connect")
        # a subscription is active once a round trip through the broker completes
        probe = f"recorder/probe/{time.monotonic_ns()}"
        self.client.subscribe(probe, qos=1)
        self.client.publish(probe, b"x", qos=1)
        wait_until(lambda: any(m.topic == probe for m in self.snapshot()), timeout=5, what="recorder probe")
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def on(self, suffix: str) -> list[Message]:
        """Messages whose topic ends with suffix (or matches it with a trailing '#')."""
        msgs = self.snapshot()
        if suffix.endswith("#"):
            return [m for m in msgs if suffix[:-1] in m.topic]
        return [m for m in msgs if m.topic.endswith(suffix)]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)
