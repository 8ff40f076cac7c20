"""The MQTT contract with the COC as code: every topic under <prefix>/<site_id>, its QoS, retain flag and payload
model. The README's table is tested against this (tests/core/test_contract_drift.py), received messages are
validated with it, and `commune-agent schema --topics DIR` writes one JSON Schema per topic for COC developers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class Loose(BaseModel):
    """A payload whose documented keys are checked; keys added later do not break a COC's client."""

    model_config = ConfigDict(extra="allow")


class Version(Loose):
    n: int = Field(description="configuration version number on this box")
    sha: str = Field(description="sha256 of the configuration file")


class Birth(Loose):
    """Published (retained) at every connect."""

    online: Literal[True] = Field(description="true: the agent is connected")
    boot_id: str = Field(description="new at every start")
    version: str = Field(description="the agent's version")
    config_sha: str = Field(description="sha256 of agent.yaml in force")
    started_at: str = Field(description="ISO time the process started")
    hostname: str = Field(description="the box's host name")
    site: dict[str, Any] = Field(description="{site_id, name}")
    drivers: list[str] = Field(description="driver sections running")
    agent_version: str = Field(description="the agent's version")
    release: Optional[str] = Field(description="the release directory it runs from, if installed as releases")
    config_version: Optional[Version] = Field(description="the configuration version in force")
    change: Optional[dict[str, Any]] = Field(description="the change document (see the change topic)")


class Offline(Loose):
    """The last will (broker-published) or a clean stop (reason: shutdown)."""

    online: Literal[False] = Field(description="false: the agent is gone")
    boot_id: str = Field(description="the boot that ended")
    reason: Optional[str] = Field(None, description="`shutdown` on a clean stop")


class Status(BaseModel):
    root: Union[Birth, Offline]


class Health(Loose):
    """The agent's health, retained."""

    ts: float = Field(description="when it was made")
    boot_id: str = Field(description="this boot")
    pid: int = Field(description="the agent's process id")
    drivers: dict[str, dict[str, Any]] = Field(description="per driver: state, detail, counters, ...")
    driver_instances: dict[str, int] = Field(description="live tasks per driver (1 each)")
    core: dict[str, dict[str, Any]] = Field(description="core tasks: uplink, health-publisher, reloader")
    spool: dict[str, Any] = Field(description="spool state and counters")
    uplink: dict[str, Any] = Field(description="uplink state and counters")
    link: dict[str, Any] = Field(description="the WAN link in use and its budget verdict")
    commands: dict[str, int] = Field(description="command counters")
    telemetry_held: int = Field(description="readings held back by report-by-exception")
    agent_version: str = Field(description="the agent's version")
    release: Optional[str] = Field(description="the release it runs from")
    config_version: Optional[Version] = Field(description="the configuration version in force")
    change: Optional[dict[str, Any]] = Field(description="the change document")


class ReadingDoc(Loose):
    name: str = Field(description="reading name")
    value: Any = Field(description="number, bool or text")
    unit: Optional[str] = Field(None, description="unit, when it has one")
    ts: Optional[float] = Field(None, description="its time, when not the message's")
    tags: Optional[dict[str, str]] = Field(None, description="source, device, camera, ...")


class Telemetry(Loose):
    seq: int = Field(description="per boot, gap-free across telemetry and events")
    boot_id: str = Field(description="the boot that produced it")
    historical: bool = Field(description="replayed after an outage or from an earlier boot")
    ts: Optional[float] = Field(None, description="the time of every reading without its own")
    readings: list[ReadingDoc] = Field(description="the readings")


class EventDoc(Loose):
    seq: int = Field(description="per boot, gap-free across telemetry and events")
    boot_id: str = Field(description="the boot that produced it")
    historical: bool = Field(description="replayed after an outage, from an earlier boot or by catch_up")
    id: str = Field(description="unique: deduplicate on it")
    ts: float = Field(description="when it happened")
    kind: str = Field(description="the event kind (the topic's last level)")
    severity: Literal["info", "warning", "critical"] = Field(description="how urgent")
    source: str = Field(description="the driver or core part that raised it")
    data: dict[str, Any] = Field(description="kind-specific: see the families' READMEs")


class ChangeDoc(Loose):
    change_id: str = Field(description="the COC's id of the change")
    kind: Literal["config", "release"] = Field(description="what changes")
    state: str = Field(description="validating, applying, gating, ..., committed, rolled_back or refused")
    reason: str = Field(description="why, for a refusal or a rollback")
    from_: Optional[dict[str, Any]] = Field(None, alias="from", description="{n, sha} or {release}")
    to: Optional[dict[str, Any]] = Field(None, description="{n, sha} or {release}")
    ts: float = Field(description="when this state began")
    progress: Optional[dict[str, Any]] = Field(None, description="download progress")


class CommandDoc(Loose):
    request_id: Optional[Union[str, int]] = Field(None, description="echoed in the result")
    ts: Optional[float] = Field(None, description="signed commands: epoch seconds")
    sig: Optional[str] = Field(None, description="signed commands: the signature")


class ResultDoc(Loose):
    request_id: Optional[Union[str, int]] = Field(description="the command's, when it could be read")
    ok: bool = Field(description="whether it ran")
    ts: float = Field(description="when the result was made (the box's clock)")
    error: Optional[str] = Field(None, description="why not, when ok is false")


@dataclass(frozen=True)
class Topic:
    """One row of the contract: `pattern` after <prefix>/<site_id>/, {placeholders} for one level each."""

    pattern: str
    retained: bool
    payload: type[BaseModel] | None  # None: raw bytes
    media_type: str = "application/json"
    direction: Literal["to_coc", "from_coc"] = "to_coc"
    qos: int = 1

    @property
    def name(self) -> str:
        return self.pattern.replace("/", "_").replace("{", "").replace("}", "")

    def matches(self, suffix: str) -> bool:
        regex = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(self.pattern)) + "$"
        return re.match(regex, suffix) is not None


TOPICS: tuple[Topic, ...] = (
    Topic("status", True, Status),
    Topic("health", True, Health),
    Topic("telemetry/{driver}", False, Telemetry),
    Topic("event/{kind}", False, EventDoc),
    Topic("snapshot/{camera}/{event_id}", False, None, "image/jpeg"),
    Topic("clip/{camera}/{clip_id}/{offset}", False, None, "video/mp4"),
    Topic("change", True, ChangeDoc),
    Topic("cmd/{name}", False, CommandDoc, direction="from_coc"),
    Topic("cmd/{name}/result", False, ResultDoc),
)


def topic_of(suffix: str) -> Topic | None:
    """The contract's row for a topic after <prefix>/<site_id>/ (the most specific one)."""
    found = [t for t in TOPICS if t.matches(suffix)]
    return max(found, key=lambda t: t.pattern.count("/")) if found else None


def validate(suffix: str, payload: bytes) -> None:
    """Raises ValueError (pydantic's ValidationError included) when a message is not what the contract says."""
    topic = topic_of(suffix)
    if topic is None:
        raise ValueError(f"topic {suffix!r} is not in the contract")
    if topic.payload is None:
        return
    doc = json.loads(payload)
    if topic.payload is Status:
        Status.model_validate({"root": doc})
    else:
        topic.payload.model_validate(doc)


def json_schema(topic: Topic) -> dict[str, Any]:
    """A JSON Schema of one topic's payload, with its QoS, retain flag and direction as x- keys."""
    if topic.payload is None:
        schema: dict[str, Any] = {"type": "string", "contentMediaType": topic.media_type,
                                  "description": "raw bytes, not JSON"}
    elif topic.payload is Status:
        schema = {"anyOf": [Birth.model_json_schema(by_alias=True), Offline.model_json_schema(by_alias=True)]}
    else:
        schema = topic.payload.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": topic.pattern,
            "x-topic": "<topic_prefix>/<site_id>/" + topic.pattern, "x-qos": topic.qos,
            "x-retained": topic.retained, "x-direction": topic.direction, **schema}


def write_schemas(directory: Path) -> list[Path]:
    """One <name>.json per topic (stable text, so the committed files show any drift in a diff)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for topic in TOPICS:
        path = directory / f"{topic.name}.json"
        path.write_text(json.dumps(json_schema(topic), indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        out.append(path)
    return out
