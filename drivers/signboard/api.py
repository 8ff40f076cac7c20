"""The signboard family's face: the notices and the leaders' schedule as last saved, the board addresses, the
command's words. Every change (a notice shown or cleared, a schedule loaded) goes through the `signboard` command,
so the console, the COC and a file meet one validation and one record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.statefile import read_json
from drivers.signboard.content import DAYS_VI, MAX_ENTRIES, ContentError, check_entries, check_notice

SECTION = "signboard"  # the supervisor gives the driver <data_dir>/<section>
STATE_FILE = "state.json"
SECRETS_FILE = "secrets.json"
COMMAND = "signboard"
ACTIONS = ("show", "clear", "schedule", "status")
__all__ = ["ACTIONS", "COMMAND", "DAYS_VI", "MAX_ENTRIES", "SECTION", "ContentError", "board_urls", "check_entries",
           "check_notice", "live_state"]


def live_state(data_root: Path) -> dict[str, Any] | None:
    """{notices: [{id, title, text, boards, bulletin, created, by}], schedule: [{day, time, what, who, where}],
    schedule_updated, schedule_by, version, boards: {id: {type, state, error}}}; None before the driver wrote."""
    doc = read_json(data_root / SECTION / STATE_FILE)
    return doc if isinstance(doc, dict) else None


def board_urls(data_root: Path, host: str, port: int) -> dict[str, str]:
    """Each screen board's page address (the secret is in it: show it to technicians only)."""
    doc = read_json(data_root / SECTION / SECRETS_FILE)
    if not isinstance(doc, dict):
        return {}
    return {b: f"http://{host}:{port}/b/{s}" for b, s in sorted(doc.items()) if isinstance(s, str)}
