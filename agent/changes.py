"""The change in progress (configuration or release) and its outcome, as the COC sees them: a retained
`change` document, an `event/change` per outcome, and the `change` field of birth and health."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from agent.audit import audit_event
from agent.driver import Event
from agent.logs import KvLogger
from agent.statefile import read_json, write_json_logged

CHANGE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
IN_PROGRESS = frozenset({"validating", "applying", "gating", "deferred", "downloading", "installing", "restarting"})
OUTCOMES = frozenset({"committed", "rolled_back", "refused"})


class ChangeTracker:
    """Holds the latest change document, kept on disk so a restart (a new release) still tells the COC."""

    def __init__(self, path: Any, emit: Callable[[Event], Awaitable[bool]], on_change: Callable[[], None]) -> None:
        self.path = path
        self._emit = emit
        self._on_change = on_change
        self.log = KvLogger("changes")
        doc = read_json(path)
        self.doc: dict[str, Any] | None = doc if isinstance(doc, dict) else None
        self.published = False  # the retained `change` topic does not show self.doc yet

    @property
    def busy(self) -> str | None:
        """The change_id of a change still in progress, if any: one change at a time."""
        if self.doc is not None and self.doc.get("state") in IN_PROGRESS:
            return str(self.doc.get("change_id"))
        return None

    def report(self, change_id: str, kind: str, state: str, reason: str = "", **fields: Any) -> None:
        """A step of a change; every field not given keeps its value within the same change."""
        base = self.doc if self.doc is not None and self.doc.get("change_id") == change_id else {}
        self.doc = {**base, "change_id": change_id, "kind": kind, "state": state, "reason": reason,
                    **fields, "ts": round(time.time(), 3)}
        if state not in ("downloading",) or not fields.get("progress"):
            self.log.info("change_state", change_id=change_id, kind=kind, state=state, reason=reason or None)
        write_json_logged(self.path, self.doc, self.log)
        self.published = False
        self._on_change()

    async def outcome(self, change_id: str, kind: str, outcome: str, reason: str = "", actor: str = "coc",
                      **fields: Any) -> None:
        """The end of a change: the document, an event the spool keeps until the COC has it, and the `audit`
        event every change raises (`actor`: who asked for it; `agent` when the box undid one by itself)."""
        self.report(change_id, kind, outcome, reason, **fields)
        assert self.doc is not None
        data = {"change_id": change_id, "kind": kind, "outcome": outcome, "reason": reason,
                "from": self.doc.get("from"), "to": self.doc.get("to")}
        severity = "info" if outcome == "committed" else "warning"
        await self._emit(Event("change", data, severity=severity, source="agent"))
        await self._emit(audit_event(actor, f"{kind}_{outcome}", change_id, ok=outcome == "committed",
                                     detail=reason, **{"from": data["from"], "to": data["to"]}))


def release_root(release_dir: Path | None) -> Path | None:
    """fleet.release_dir, or else the release layout this process runs from (install.sh makes one): a box
    installed as releases takes updates without anyone writing the path into its config."""
    if release_dir is not None:
        return release_dir
    try:
        parent = Path(sys.prefix).resolve().parent
        return parent if (parent / "state.json").is_file() else None
    except OSError:
        return None


def running_release(release_dir: Path | None) -> str | None:
    """The release this process runs from, when the box was installed as releases (a venv per release)."""
    release_dir = release_root(release_dir)
    if release_dir is None:
        return None
    try:
        prefix = Path(sys.prefix).resolve()  # started as releases/current/bin/python: the release it points at
        if prefix.parent == release_dir.resolve():
            return prefix.name
    except OSError:
        pass
    return None
