"""One schema per COC command: the router checks a command's arguments against it before the handler runs, and
`commune-agent schema --commands` publishes them so a COC can generate its client.

A family's commands are in its own cheap module, named by `DriverSpec.commands` in drivers/registry.py."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.registry import SPECS, load_object


class Args(BaseModel):
    """Base of every command's arguments: unknown keys are refused and nothing is coerced (\"5\" is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class NoArgs(Args):
    """A command that takes nothing but `request_id` (and `ts`, `sig` when signing is on)."""


class Page(Args):
    """Where a paged read starts and how many items it may hold; results are also bounded in bytes."""

    page: int = Field(0, ge=0, description="index of the first item: 0, then the `next` of the previous result")
    limit: int = Field(50, ge=1, le=500, description="at most this many items (fewer when they would not fit "
                                                     "in one message)")


CHANGE_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class ConfigApplyArgs(Args):
    """A new configuration: the whole YAML or whole top-level sections, signed with the change key."""

    change_id: str = Field(pattern=CHANGE_ID, description="the COC's id of this change")
    config: Optional[str] = Field(None, description="the whole agent.yaml (give this or patch)")
    patch: Optional[dict[str, Any]] = Field(
        None, description="top-level keys replaced whole; null removes one (give this or config)")
    files: Optional[dict[str, str]] = Field(None, description="file name -> text, written under pushed/")
    gate_s: Optional[float] = Field(None, ge=5, le=3600, description="seconds the new configuration must hold")


class ConfigRollbackArgs(Args):
    """Back to a kept configuration version (or the one committed before last-known-good)."""

    change_id: str = Field(pattern=CHANGE_ID, description="the COC's id of this change")
    version: Optional[int] = Field(None, ge=1, description="the version to go back to")
    gate_s: Optional[float] = Field(None, ge=5, le=3600, description="seconds it must hold")


class UpdateArgs(Args):
    """A new release: its signed manifest (see README, Self-update)."""

    change_id: str = Field(pattern=CHANGE_ID, description="the COC's id of this change")
    manifest: dict[str, Any] = Field(description="the release manifest")
    manifest_sig: str = Field(description="Ed25519 signature of the manifest, hex")
    urgent: bool = Field(False, description="download even on a metered link")


class ConfigGetArgs(Page):
    """The running configuration, secrets masked, with its version; `page`/`limit` count top-level sections."""


class CatchUpArgs(Page):
    """Events (as-run and audit included) the broker took since a time or a seq, again, from the box's history;
    `page` is the `next` of the previous answer (a position in the history), 0 first."""

    since_ts: Optional[float] = Field(None, description="events with a ts after this (epoch seconds)")
    since_seq: Optional[int] = Field(None, ge=0, description="events delivered after (boot_id, since_seq)")
    boot_id: Optional[str] = Field(None, pattern=r"^[0-9a-f]{32}$", description="the boot since_seq belongs to")
    kinds: Optional[list[str]] = Field(None, max_length=50, description="only these event kinds")


CORE_COMMANDS: dict[str, type[Args]] = {
    "ping": NoArgs, "rebirth": NoArgs, "reload": NoArgs, "config_get": ConfigGetArgs, "catch_up": CatchUpArgs,
    "config_apply": ConfigApplyArgs, "config_rollback": ConfigRollbackArgs, "update": UpdateArgs,
}


def all_commands() -> dict[str, type[Args]]:
    """Every command a box may answer: the core's and each family's (a family not installed is left out)."""
    out = dict(CORE_COMMANDS)
    for spec in SPECS:
        if spec.commands is None:
            continue
        try:
            out.update(load_object(spec.commands))
        except ModuleNotFoundError:
            continue
    return out


def check(schema: type[BaseModel], args: dict[str, Any]) -> str | None:
    """None when args fit the schema; otherwise one line naming each wrong key."""
    try:
        schema.model_validate(args)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "arguments"
            parts.append(f"{where}: {err['msg']}")
        return "invalid arguments: " + "; ".join(parts)
    return None


def json_schemas() -> dict[str, dict[str, Any]]:
    """name -> JSON Schema of the command's payload (request_id, ts and sig added, as the wire carries them)."""
    out = {}
    for name, model in sorted(all_commands().items()):
        schema = model.model_json_schema()
        props = schema.setdefault("properties", {})
        props["request_id"] = {"anyOf": [{"type": "string", "maxLength": 200}, {"type": "integer"}],
                               "description": "echoed in the result; put it first"}
        props["ts"] = {"type": "number", "description": "epoch seconds (signed commands)"}
        props["sig"] = {"type": "string", "description": "signature (signed commands)"}
        schema["title"] = name
        out[name] = schema
    return out
