"""One local MQTT broker: subscribe, decode per topic filter, name devices from topic segments."""

from __future__ import annotations

import re
import ssl
import time
from typing import Any

import paho.mqtt.client as mqtt

from agent.driver import Event
from agent.logs import KvLogger
from agent.section import read_secret
from drivers.sensors.config import MqttSource, MqttTopic
from drivers.sensors.formats import Decoder, zigbee2mqtt_side_topic
from drivers.sensors.ingest import Ingest, RateLimitedLog, ingest_payload

_PLACEHOLDER = re.compile(r"\{(\d+|#)\}")


def device_name(filter_: str, topic: str, template: str | None) -> str:
    """Device from a topic: a template of {N}/{#}, or by default what the wildcards matched."""
    fparts, tparts = filter_.split("/"), topic.split("/")
    if template:
        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "#":
                return "/".join(tparts[len(fparts) - 1:]) if fparts[-1] == "#" else ""
            i = int(key)
            return tparts[i] if i < len(tparts) else ""
        return _PLACEHOLDER.sub(sub, template) or topic
    captured = [tparts[i] for i, p in enumerate(fparts) if p == "+" and i < len(tparts)]
    if fparts[-1] == "#":
        captured.extend(tparts[len(fparts) - 1:])
    return "/".join(captured) or topic


class _Route:
    """A topic filter with its decoder; built once."""

    def __init__(self, spec: MqttTopic) -> None:
        self.spec = spec
        self.decoder = Decoder(spec)


class MqttSubscriber:
    """Owns a paho client whose network thread reconnects forever (with backoff), also after long outages."""

    def __init__(self, cfg: MqttSource, ingest: Ingest, log: KvLogger, client_id: str,
                 default_stale_s: float) -> None:
        self.cfg = cfg
        self.ingest = ingest
        self.log = log.child(cfg.name)
        self.badlog = RateLimitedLog(self.log)
        self.default_stale_s = default_stale_s
        self._was_up = False
        self._stopping = False
        self.failure: Exception | None = None  # paho's thread survives callback errors; nothing to surface
        self._routes = [_Route(t) for t in cfg.topics]
        version = mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=cfg.client_id or client_id, protocol=version)
        if cfg.username:
            self.client.username_pw_set(cfg.username, read_secret(cfg.password_file))
        if cfg.tls_ca_file:
            self.client.tls_set(ca_certs=str(cfg.tls_ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=max(1, round(cfg.reconnect_min_s)),
                                        max_delay=max(1, round(cfg.reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        for route in self._routes:
            self.client.message_callback_add(route.spec.filter, self._callback(route))
        ingest.set_status(cfg.name, False, "connecting")

    def start(self) -> None:
        self.log.info("mqtt_connecting", host=self.cfg.host, port=self.cfg.port, topics=len(self._routes))
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            self.ingest.set_status(self.cfg.name, False, f"refused: {rc}")
            self.log.warning("mqtt_refused", host=self.cfg.host, port=self.cfg.port, reason=str(rc))
            return
        for route in self._routes:
            client.subscribe(route.spec.filter, qos=route.spec.qos)
        self.ingest.set_status(self.cfg.name, True)
        self.log.info("mqtt_connected", host=self.cfg.host, port=self.cfg.port)
        if self._was_up:
            self.ingest.event(Event("sensor_source_back", {"source": self.cfg.name, "kind": "mqtt"}))
        self._was_up = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if self._stopping:
            return
        self.ingest.set_status(self.cfg.name, False, f"disconnected: {rc}")
        self.log.warning("mqtt_disconnected", host=self.cfg.host, port=self.cfg.port, reason=str(rc))
        if self._was_up:
            self.ingest.event(Event("sensor_source_lost", {"source": self.cfg.name, "kind": "mqtt",
                                                           "reason": str(rc)}, severity="warning"))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.ingest.set_status(self.cfg.name, False, "broker unreachable")
        self.badlog.warning("mqtt_connect_failed", key="connect", host=self.cfg.host, port=self.cfg.port)

    def _callback(self, route: _Route) -> Any:
        spec = route.spec
        stale = spec.stale_after_s if spec.stale_after_s is not None else self.default_stale_s
        z2m = spec.format == "zigbee2mqtt"

        def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            topic = msg.topic
            if z2m and zigbee2mqtt_side_topic(topic):
                return
            try:
                ingest_payload(self.ingest, self.badlog, route.decoder, msg.payload, source=self.cfg.name,
                               device=device_name(spec.filter, topic, spec.device), topic=topic,
                               stale_after_s=stale)
            except Exception as exc:  # a decoder bug must not kill paho's network thread
                self.ingest.count("decode_error")
                self.badlog.warning("decode_error", key="bug", topic=topic,
                                    error=f"{type(exc).__name__}: {exc}", ts=time.time())

        return on_message
