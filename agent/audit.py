"""Audit events: one shape for every change whoever made it (the console, the COC, a bulletin file, an automation,
a configuration push), so a second operator learns of each from the `audit` topic alone."""

from __future__ import annotations

import time
from typing import Any

from agent.driver import Event

KIND = "audit"


def audit_event(actor: str, action: str, target: str | None, ok: bool = True, detail: str | None = None,
                **extra: Any) -> Event:
    """`actor` names who changed it: `coc`, `file:<path>`, `automations:<rule>`, ...; the keys are the console's
    own (user, role, address: None here), so every audit event has one shape."""
    data = {"ts": round(time.time(), 3), "actor": actor[:200], "user": None, "role": None, "action": action,
            "target": target, "ok": bool(ok), "detail": (detail or "")[:500] or None, "address": None, **extra}
    return Event(KIND, data, severity="info" if ok else "warning")
