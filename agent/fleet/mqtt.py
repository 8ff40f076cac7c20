"""A small synchronous MQTT client for the fleet CLI: connect, subscribe, read in order, publish and wait for the
PUBACK; every broker refusal becomes one FleetError line."""

from __future__ import annotations

import json
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.fleet.config import FleetCliConfig, FleetError


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        """The payload as JSON, or None when it is not (a stray publish must not stop the CLI)."""
        try:
            return json.loads(self.payload)
        except (UnicodeDecodeError, ValueError):
            return None


class FleetMqtt:
    """One MQTT 5 session of the operator's login; messages are read in arrival order from `get`."""

    def __init__(self, cfg: FleetCliConfig) -> None:
        self.cfg = cfg
        self.prefix = cfg.topic_prefix
        self.client_id = f"commune-fleet-{os.getpid()}-{secrets.token_hex(3)}"
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.max_packet: int | None = None
        self._lock = threading.Condition()
        self._acks: dict[int, Any] = {}
        self._connected: Any = None  # the CONNACK reason code, once it came
        self._gone: str | None = None  # why the broker closed the session
        self._topics: list[str] = []
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                        client_id=self.client_id)
        c.reconnect_delay_set(0.5, 5)
        b = cfg.broker
        if b.username:
            c.username_pw_set(b.username, b.password())
        if b.tls is not None:
            c.tls_set(ca_certs=str(b.tls.ca_file), certfile=str(b.tls.cert_file) if b.tls.cert_file else None,
                      keyfile=str(b.tls.key_file) if b.tls.key_file else None)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_ack
        c.on_subscribe = self._on_ack
        self.client = c

    # -- paho's thread ---------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        with self._lock:
            self._connected = rc
            if not rc.is_failure:
                self._gone = None
                self.max_packet = getattr(props, "MaximumPacketSize", None) if props is not None else None
            self._lock.notify_all()
        if not rc.is_failure and self._topics:  # a new session after a drop: the subscriptions are gone
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self._topics])

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        with self._lock:
            self._gone = str(rc)
            self._lock.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Message(msg.topic, msg.payload, bool(msg.retain)))

    def _on_ack(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any = None) -> None:
        with self._lock:
            self._acks[mid] = rc
            self._lock.notify_all()

    # -- the caller's thread ---------------------------------------------------------------
    def connect(self) -> FleetMqtt:
        b = self.cfg.broker
        where = f"broker {b.host}:{b.port}"
        try:
            self.client.connect(b.host, b.port, keepalive=30, clean_start=True)
        except (OSError, ValueError) as exc:
            raise FleetError(f"cannot reach {where}: {getattr(exc, 'strerror', None) or exc}", 1) from None
        self.client.loop_start()
        with self._lock:
            if not self._lock.wait_for(lambda: self._connected is not None, b.connect_timeout_s):
                self.close()
                raise FleetError(f"no answer from {where} in {b.connect_timeout_s:g} s", 1)
            rc = self._connected
        if rc.is_failure:
            self.close()
            raise FleetError(f"{where} refused the login of {b.username or '(anonymous)'}: {rc}")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> FleetMqtt:
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _wait_ack(self, mid: int, what: str, timeout: float) -> Any:
        with self._lock:
            if not self._lock.wait_for(lambda: mid in self._acks, timeout):
                why = f" (the broker closed the session: {self._gone})" if self._gone else ""
                raise FleetError(f"no acknowledgement for {what} in {timeout:g} s{why}", 1)
            return self._acks.pop(mid)

    def subscribe(self, topics: Iterable[str], timeout: float = 10.0) -> None:
        """Subscribe at QoS 1 and wait for the broker to grant every topic (an ACL refusal is an error)."""
        topics = list(topics)
        self._topics += topics
        rc, mid = self.client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise FleetError(f"cannot subscribe to {topics[0]}: {mqtt.error_string(rc)}", 1)
        codes = self._wait_ack(mid, "the subscription", timeout)
        refused = [f"{t} ({rc})" for t, rc in zip(topics, codes) if rc.is_failure]
        if refused:
            raise FleetError(f"the broker refused the subscription to {', '.join(refused)}: check the COC user's "
                             "ACL (it needs readwrite <prefix>/#)")

    def sync(self, timeout: float = 10.0) -> list[Message]:
        """Every message the broker sent before now, retained ones of the subscriptions included: a probe of our
        own arrives after them."""
        probe = f"{self.prefix}/_fleet/probe/{self.client_id}"
        if probe not in self._topics:
            self.subscribe([probe])
        token = secrets.token_hex(8).encode()
        self.publish(probe, token, timeout=timeout)
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.get(deadline - time.monotonic())
            if msg is None:
                raise FleetError(f"the broker did not return a probe in {timeout:g} s", 1)
            if msg.topic == probe:
                if msg.payload == token:
                    return out
                continue
            out.append(msg)

    def get(self, timeout: float) -> Message | None:
        try:
            return self.inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def publish(self, topic: str, payload: bytes | str, retain: bool = False, timeout: float = 30.0) -> None:
        """QoS 1 and wait for the PUBACK; a refusal (MQTT 5 reason code >= 0x80) is an error naming the topic."""
        self.wait_published(self.send(topic, payload, retain), topic, timeout)

    def send(self, topic: str, payload: bytes | str, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise FleetError(f"cannot publish {topic}: {mqtt.error_string(info.rc)}", 1)
        return info.mid

    def wait_published(self, mid: int, topic: str, timeout: float = 30.0) -> None:
        rc = self._wait_ack(mid, topic, timeout)
        if rc.is_failure:
            raise FleetError(f"the broker refused {topic}: {rc}", 1)
