"""The `fleet:` section: how this box takes changes (configuration, releases) from the COC."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from agent.section import SecretFile, Section
from agent.signing import read_public_key


class FleetConfig(Section):
    """Remote configuration and self-update: signed by the COC's Ed25519 keys, committed after a health gate."""

    change_key_file: SecretFile | None = Field(
        None, description="the COC's Ed25519 change public key (PEM): config_apply, config_rollback and update "
                          "commands must carry its signature; absent = those commands are refused")
    release_key_file: SecretFile | None = Field(
        None, description="the Ed25519 release public key (PEM) pinned on this box: a release manifest must "
                          "carry its signature; absent = update is refused")
    release_dir: Path | None = Field(
        None, description="the release layout install.sh made (/opt/commune-agent/releases); absent = the "
                          "layout this agent runs from, if any (else update is refused)")
    gate_s: float = Field(60.0, ge=10, le=3600, description="health gate after a change: the COC reached again "
                                                             "with the new settings and every driver that was ok "
                                                             "is ok again within this time, or the change is "
                                                             "rolled back")
    max_starts: int = Field(3, ge=1, le=20, description="starts of a new release without passing the gate before "
                                                        "the guard goes back to the last-known-good release")
    history: int = Field(10, ge=2, le=200, description="configuration versions kept on the box")
    defer_on_metered: bool = Field(True, description="a release download waits for an unmetered link unless the "
                                                     "COC marks the offer urgent")

    @field_validator("change_key_file", "release_key_file")
    @classmethod
    def _ed25519(cls, v: Path | None) -> Path | None:
        if v is not None:
            read_public_key(v)  # fails closed: a key that is not an Ed25519 public key is a config error
        return v
