"""The automations family's face: the rules' saved state (last fired, pending warnings) and the command's words.

Reads come from the state file the driver keeps; every change (enable, disable, confirm, cancel) goes through
the `automations` command, so the console, the COC and the CLI meet one validation and one record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.statefile import read_json

SECTION = "automations"  # the supervisor gives the driver <data_dir>/<section>
STATE_FILE = "state.json"
COMMAND = "automations"
ACTIONS = ("list", "status", "enable", "disable", "confirm", "cancel")
EVENTS = ("automation_fired", "automation_pending", "automation_confirmed", "automation_cancelled",
          "automation_timeout", "automation_switched")


def live_state(data_root: Path) -> dict[str, Any] | None:
    """The driver's saved document: {"rules": {id: {last_fired, last_why, count, switched, ...}}, "pending": {...}};
    None before it ever wrote."""
    doc = read_json(data_root / SECTION / STATE_FILE)
    return doc if isinstance(doc, dict) else None


def pending(data_root: Path) -> list[dict[str, Any]]:
    """Warnings waiting for officials, the soonest deadline first: {id, rule, text, why, created, deadline,
    on_timeout}."""
    doc = live_state(data_root) or {}
    found = [p for p in (doc.get("pending") or {}).values() if isinstance(p, dict)]
    return sorted(found, key=lambda p: p.get("deadline") or 0)
