"""The fleet CLI's own config (fleet.yaml on the operator's machine): broker login, keys, rollout defaults."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from agent.section import SecretFile, Section, read_secret

DEFAULT_FLEET_CONFIG = Path("~/.config/commune-agent/fleet.yaml")
ENV_FLEET_CONFIG = "COMMUNE_FLEET_CONFIG"


class FleetError(Exception):
    """A problem reported in one line; `code` is the exit status (2 usage/config, 1 operation failed)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class BrokerTls(Section):
    """TLS to the COC broker."""

    ca_file: SecretFile = Field(description="CA certificate that signed the broker's certificate (PEM)")
    cert_file: SecretFile | None = Field(None, description="client certificate (PEM), with key_file")
    key_file: SecretFile | None = Field(None, description="client private key (PEM), with cert_file")


class BrokerConfig(Section):
    """The COC broker the boxes talk to, and the operator's login on it (it must read and write <prefix>/#)."""

    host: str = Field(description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with TLS)")
    tls: BrokerTls | None = Field(None, description="TLS settings; absent = plain TCP")
    username: str | None = Field(None, description="the COC's MQTT user name")
    password_file: SecretFile | None = Field(None, description="file holding that user's password")
    connect_timeout_s: float = Field(10.0, gt=0, le=300, description="how long to wait for the broker to answer")

    @model_validator(mode="after")
    def _login(self) -> BrokerConfig:
        if self.password_file is not None and not self.username:
            raise ValueError("password_file needs username")
        return self

    def password(self) -> str | None:
        return read_secret(self.password_file)


class RolloutDefaults(Section):
    """How a change spreads: canaries first, then batches; a failure beyond max_failures halts it."""

    canaries: int = Field(2, ge=0, description="sites that get a change first, alone, before any batch")
    batch: int = Field(10, ge=1, description="sites changed at once after the canaries")
    max_failures: int = Field(0, ge=0, description="failed sites tolerated; one more halts the rollout")
    site_timeout_s: float = Field(300.0, gt=0, description="a site with no outcome this long after it was sent "
                                                           "the change counts as failed")


class FleetCliConfig(Section):
    """Everything `commune-agent fleet` needs; the private keys never leave the COC."""

    broker: BrokerConfig = Field(description="the COC broker")
    topic_prefix: str = Field("commune/v1", pattern=r"^[^#+]+$", description="topics are <prefix>/<site_id>/...")
    change_key_file: Path | None = Field(None, description="Ed25519 private key that signs configuration and "
                                                           "release commands (its .pub goes on every box)")
    release_key_file: Path | None = Field(None, description="Ed25519 private key that signs release manifests "
                                                            "(its .pub is pinned on every box)")
    command_key_file: SecretFile | None = Field(None, description="HMAC key of plain commands (coc.command_key_file "
                                                                  "on the boxes); enrolment gives it to new boxes")
    state_dir: Path = Field(Path("~/.local/state/commune-agent/rollouts"),
                            description="one JSON file per rollout, so `fleet rollout resume` continues one")
    rollout: RolloutDefaults = Field(RolloutDefaults(), description="defaults of config push and release push")

    def rollout_dir(self) -> Path:
        return self.state_dir.expanduser()


def config_path(given: str | Path | None) -> Path:
    """--fleet-config, else $COMMUNE_FLEET_CONFIG, else ~/.config/commune-agent/fleet.yaml."""
    if given:
        return Path(given).expanduser()
    env = os.environ.get(ENV_FLEET_CONFIG)
    return Path(env).expanduser() if env else DEFAULT_FLEET_CONFIG.expanduser()


def load_fleet_config(given: str | Path | None) -> FleetCliConfig:
    """The validated fleet config, or FleetError naming the file and every bad key."""
    path = config_path(given)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetError(f"fleet config {path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FleetError(f"fleet config {path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return FleetCliConfig.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: "
                             f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors(include_url=False))
        raise FleetError(f"fleet config {path}: {problems}") from None
