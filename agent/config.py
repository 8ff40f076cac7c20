"""The whole config as pydantic models, and one load() whose errors name key path and line."""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ByteSize, Field, ValidationError, create_model, field_validator, model_validator

from agent.fleet_config import FleetConfig
from agent.report_by_exception import TelemetryConfig
from agent.section import SecretFile, Section, check_mqtt_client, read_key_file
from drivers.registry import SPECS, load_object

DEFAULT_CONFIG_PATH = Path("/etc/commune-agent/agent.yaml")


class SiteConfig(Section):
    """Who this agent is: site_id goes into every topic, so it must be topic-safe."""

    site_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="commune admin code, e.g. 18241")
    name: str = Field("", description="the commune's name, for people reading the COC's screens")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="IANA time zone for schedules (bulletins, arming)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class TlsConfig(Section):
    """TLS to the COC broker; a client certificate when the broker logs agents in by certificate."""

    ca_file: SecretFile = Field(description="CA certificate that signed the broker's certificate (PEM)")
    cert_file: SecretFile | None = Field(None, description="client certificate (PEM); goes with key_file")
    key_file: SecretFile | None = Field(None, description="client private key (PEM); goes with cert_file")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class CocConfig(Section):
    """The COC's MQTT broker and how this agent talks to it."""

    host: str = Field(description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with TLS)")
    tls: TlsConfig | None = Field(None, description="TLS settings; absent = plain TCP")
    username: str | None = Field(None, description="MQTT user name")
    password_file: SecretFile | None = Field(None, description="file holding the MQTT password (needs username)")
    client_id: str | None = Field(None, description="MQTT client id (default commune-agent-<prefix>/<site_id>)")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive; the broker sends the last will "
                                                            "after 1.5 x this without traffic")
    topic_prefix: str = Field("commune/v1", pattern=r"^[^#+]+$", description="topics are <prefix>/<site_id>/...")
    mqtt_version: Literal["5", "3.1.1"] = Field("5", description="5 lets the agent see a broker's refusals "
                                                                 "(PUBACK reason codes); 3.1.1 cannot")
    batch_size: int = Field(500, ge=1, le=10000, description="most spool rows published per batch (a batch is "
                                                            "also sized to what the link acknowledges)")
    max_packet_bytes: ByteSize | None = Field(
        None, ge=1024, description="the largest MQTT packet the broker takes (e.g. EMQX 1MB): a larger message is "
                                   "set aside with an event/message_dropped instead of sent; MQTT 5 brokers announce "
                                   "theirs in CONNACK (the smaller one counts); absent = no limit")
    reconnect_min_s: float = Field(1.0, gt=0, description="first reconnect delay; doubles up to reconnect_max_s")
    reconnect_max_s: float = Field(60.0, gt=0, description="longest reconnect (and refused-topic retry) delay")
    command_key_file: SecretFile | None = Field(
        None, description="HMAC key for signed commands: one line of text (>= 16 characters), hex:<digits> or "
                          "base64:<text>; absent = commands unsigned")
    command_window_s: int = Field(300, ge=5, le=86400, description="a signed command's ts must be this close "
                                                                    "to the agent's clock")
    max_command_bytes: int = Field(65536, ge=256, le=16 * 1024 * 1024, description="larger commands are refused")
    health_interval_s: float = Field(600.0, ge=10, le=86400, description="the retained health document is sent "
                                                                         "at once when something an operator would "
                                                                         "act on changes, and at least this often")

    @field_validator("command_key_file")
    @classmethod
    def _key_usable(cls, v: Path | None) -> Path | None:
        if v is not None:
            read_key_file(v)  # fails closed: an empty, binary or short key is a config error naming the file
        return v

    @model_validator(mode="after")
    def _checks(self) -> CocConfig:
        check_mqtt_client(self)
        return self


class SpoolConfig(Section):
    """Where readings wait for the COC; bounded so a long outage cannot fill the disk."""

    path: Path | None = Field(None, description="spool file (default <data_dir>/spool.db)")
    max_bytes: ByteSize = Field(ByteSize(256 * 1024 * 1024), ge=1024 * 1024,
                                description="the spool file, its WAL and quarantined files together stay under "
                                            "this; the lowest priority, oldest rows go first")


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level of the agent")
    levels: dict[str, Literal["DEBUG", "INFO", "WARNING", "ERROR"]] = Field(
        default_factory=dict, description="per-component levels, e.g. {uplink: DEBUG, driver.camera: WARNING}")


_CORE_FIELDS: dict[str, Any] = {
    "site": (SiteConfig, Field(description="who this agent is")),
    "coc": (CocConfig, Field(description="the commune operations centre's MQTT broker")),
    "data_dir": (Path, Field(Path("/var/lib/commune-agent"),
                             description="state: spool, bulletin store, inventory, snapshots")),
    "spool": (SpoolConfig, Field(SpoolConfig(), description="the store-and-forward queue to the COC")),
    "logging": (LoggingConfig, Field(LoggingConfig(), description="log levels (logs go to the journal)")),
    "telemetry": (TelemetryConfig, Field(TelemetryConfig(), description="what readings go to the COC: report by "
                                                                       "exception with a heartbeat")),
    "fleet": (FleetConfig, Field(FleetConfig(), description="remote configuration and self-update from the COC")),
}


def _summary(model: type[BaseModel]) -> str:
    """A family section is documented by its model's docstring (first line), written once next to its code."""
    return (model.__doc__ or "").strip().split("\n", 1)[0].rstrip(".")


def _build_model() -> type[BaseModel]:
    fields = dict(_CORE_FIELDS)
    for spec in SPECS:
        section_cls = load_object(spec.config)
        summary = _summary(section_cls)
        if spec.section == "host":
            fields[spec.section] = (section_cls, Field(section_cls(), description=f"{summary} (always on)"))
        else:
            fields[spec.section] = (Optional[section_cls],
                                    Field(None, description=f"{summary} (absent = off)"))
    return create_model("AgentConfig", __base__=Section, **fields)


AgentConfig = _build_model()


def spool_path(cfg: Any) -> Path:
    return cfg.spool.path or cfg.data_dir / "spool.db"


@dataclass
class LoadedConfig:
    config: Any
    sha: str
    path: Path


def one_line(text: str) -> str:
    """A key or value from the file may hold a newline or a control character: escape it, so each
    problem stays one line in the journal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(Exception):
    """Carries every problem as a ready-to-print line; never a traceback."""

    def __init__(self, lines: list[str]) -> None:
        lines = [one_line(line) for line in lines]  # keys and values from the file may hold newlines
        super().__init__("\n".join(lines))
        self.lines = lines


def _line_map(text: str) -> dict[tuple[Any, ...], int]:
    """Map every key path in the YAML to the 1-based line where it is written."""
    lines: dict[tuple[Any, ...], int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union/function markers so the path is what the user wrote."""
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


_SECRET_KEY = re.compile(r"(password|secret|token|api_key)$")


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model that owns the keys at loc, following nested models, lists and dicts."""
    model: Any = AgentConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _reason(err: dict[str, Any], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    key = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        if _SECRET_KEY.search(key):
            return f"unknown key (secrets are read from files: use {key}_file)"
        owner = _model_at(loc[:-1])
        close = difflib.get_close_matches(key, list(owner.model_fields), n=1) if owner else []
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


# a renamed section's old name -> its name now: a file written before the rename still loads, with a warning
RENAMED_SECTIONS: dict[str, str] = {"health": "host"}


def renamed_sections(data: Any, text: str = "") -> list[str]:
    """One warning line per section written under its old name; both names at once is a config error."""
    if not isinstance(data, dict):
        return []
    lines = _line_map(text) if text and any(old in data for old in RENAMED_SECTIONS) else {}
    warnings, errors = [], []
    for old, new in RENAMED_SECTIONS.items():
        if old not in data:
            continue
        line = _line_for((old,), lines)
        where = f" (line {line})" if line else ""
        if new in data:
            errors.append(f"config error: {old}: the old name of {new}, and {new} is given too: keep {new} only{where}")
        else:
            warnings.append(f"config warning: {old}: renamed {new}; read as {new} for now, rename the section{where}")
    if errors:
        raise ConfigError(errors)
    return warnings


def validate(data: Any, text: str = "") -> Any:
    """Validate parsed YAML; raise ConfigError with one line per problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["config error: <top>: the file must be a mapping of sections (line 1)"])
    renamed_sections(data, text)
    renamed = {new: old for old, new in RENAMED_SECTIONS.items() if old in data}
    data = {RENAMED_SECTIONS.get(k, k) if isinstance(k, str) else k: v for k, v in data.items()}
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = _line_map(text) if text else {}
        out = []
        for err in exc.errors(include_url=False):
            loc = _clean_loc(tuple(err["loc"]))
            # the key as the file wrote it (an old section name), so the line is found and the path is familiar
            written = (renamed[loc[0]],) + loc[1:] if loc and loc[0] in renamed else loc
            dotted = ".".join(str(p) for p in written) or "<top>"
            line = _line_for(written, lines)
            where = f" (line {line})" if line else ""
            out.append(f"config error: {dotted}: {_reason(err, loc)}{where}")
        raise ConfigError(out) from None


def load(path: str | Path | None) -> LoadedConfig:
    """Read, parse and validate one config file."""
    p = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError([f"config error: {p}: cannot read: {exc.strerror or exc}"]) from None
    return parse_text(raw, p)


def parse_text(raw: bytes, p: Path) -> LoadedConfig:
    """Parse and validate a config's bytes as if read from p: what check-config and a COC push both run."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"config error: {p}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"config error: <yaml>: {problem}{where}"]) from None
    for line in renamed_sections(data, text):
        print(line, file=sys.stderr)
    cfg = validate(data, text)
    return LoadedConfig(cfg, hashlib.sha256(raw).hexdigest()[:12], p)


def load_or_exit(path: str | Path | None) -> Any:
    """For CLI commands: the config, or its errors on stderr and exit code 2."""
    try:
        return load(path).config
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        raise SystemExit(2) from None


def load_section_or_exit(path: str | Path | None, section: str, command: str) -> tuple[Any, Any]:
    """For a family's CLI: the whole config and its section, or one line naming what is missing and exit 2."""
    cfg = load_or_exit(path)
    found = getattr(cfg, section, None)
    if found is None:
        print(f"{command}: no '{section}' section in the config", file=sys.stderr)
        raise SystemExit(2)
    return cfg, found
