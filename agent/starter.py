"""The first config a box gets: valid as written (site, COC, host), every family present but commented out.

`commune-agent init` fills it from flags or answers; config/agent.starter.yaml (what install.sh puts in
/etc/commune-agent/agent.yaml) is it with the placeholders, written by scripts/gen-example-config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from drivers.registry import SPECS, load_object

PLACEHOLDER_SITE_ID = "change-me"
PLACEHOLDER_COC_HOST = "coc.example.gov.vn"


@dataclass(frozen=True)
class StarterAnswers:
    """What a technician knows on the first day; everything else keeps its default."""

    site_id: str = PLACEHOLDER_SITE_ID
    site_name: str = ""
    coc_host: str = PLACEHOLDER_COC_HOST
    coc_port: int = 1883
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    command_key_file: Path | None = None  # the COC's HMAC key of plain commands (fleet enrolment gives one)


def _q(value: str) -> str:
    """A YAML scalar that stays a string whatever it holds (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _summary(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().split("\n", 1)[0].rstrip(".")


def render(a: StarterAnswers) -> str:
    """The starter config text for these answers."""
    coc = [f"  host: {_q(a.coc_host)}", f"  port: {a.coc_port}"]
    if a.ca_file is not None:
        coc += ["  tls:", f"    ca_file: {_q(str(a.ca_file))}"]
    else:
        coc += ["  # TLS (port 8883): verify the broker with the COC's CA certificate.",
                "  # tls:", "  #   ca_file: /etc/commune-agent/coc-ca.crt"]
    if a.username is not None:
        coc.append(f"  username: {_q(a.username)}")
    else:
        coc.append("  # username: agent-18241")
    if a.password_file is not None:
        coc.append(f"  password_file: {_q(str(a.password_file))}")
    else:
        coc.append("  # password_file: /etc/commune-agent/coc.password   # the password, alone in a file (0640)")
    if a.command_key_file is not None:
        coc.append(f"  command_key_file: {_q(str(a.command_key_file))}")
    families = []
    for spec in SPECS:
        if spec.section == "host":
            continue
        families += ["", f"# --- {spec.section}: {_summary(load_object(spec.config))}",
                     f"# Uncomment and fill in from the `{spec.section}:` section of agent.example.yaml.",
                     f"# {spec.section}:"]
    lines = [
        "# commune-agent configuration. Every option, commented: agent.example.yaml next to this file.",
        "# Check it with:  commune-agent check-config   Apply changes:  systemctl reload commune-agent",
        "# Secrets are never written here: options ending in _file name a file that holds the secret.",
        "",
        "site:",
        "  # The commune's administrative code: part of every MQTT topic (letters, digits, - and _).",
        f"  site_id: {_q(a.site_id)}",
        f"  name: {_q(a.site_name)}",
        "",
        "# The commune operations centre's MQTT broker.",
        "coc:",
        *coc,
        "",
        "# Host metrics (CPU, memory, disk, temperatures) every interval_s, with threshold alarms.",
        "host:",
        "  interval_s: 60",
        *families,
    ]
    return "\n".join(lines) + "\n"
