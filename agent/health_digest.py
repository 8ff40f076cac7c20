"""What in the health document a COC operator would act on: the retained document is republished when this
changes (or periodically), not whenever a counter moves or the spool depth flickers as readings flow."""

from __future__ import annotations

from typing import Any

# health fields that count faults: a change in one is news, however small
FAULT_COUNTERS = ("spool_dropped", "spool_refused", "emit_refused", "spool_quarantined", "spool_files_lost",
                  "spool_salvaged")
UPLINK_FAULTS = ("rejected", "set_aside", "spool_read_errors", "connects")
QUIET_DEPTH = 100  # a spool shallower than this is readings on their way, not a backlog


def depth_band(depth: Any) -> int:
    """0 while readings merely pass through; then one band per power of ten, so a backlog that grows shows."""
    if not isinstance(depth, int) or depth < QUIET_DEPTH:
        return 0
    return len(str(depth))


def link_digest(link: dict[str, Any]) -> Any:
    """The link in use and its budget state; the budget's share in tens of percent (it creeps up all day)."""
    pct = link.get("budget_pct")
    band = int(pct // 10) if isinstance(pct, (int, float)) else None
    return (link.get("name"), link.get("metered"), link.get("defer_bulk"), link.get("slow_telemetry"), band)


def digest(doc: dict[str, Any]) -> Any:
    """The parts of a health document that matter to an operator, in a comparable form."""
    spool = doc.get("spool") or {}
    uplink = doc.get("uplink") or {}
    change = doc.get("change") or {}
    return (
        tuple((n, d.get("state"), d.get("detail"), d.get("restarts"))
              for n, d in sorted((doc.get("drivers") or {}).items())),
        tuple(sorted((doc.get("driver_instances") or {}).items())),
        tuple((n, t.get("state"), t.get("restarts")) for n, t in sorted((doc.get("core") or {}).items())),
        spool.get("spool_state"), spool.get("spool_degraded_reason"), depth_band(spool.get("spool_depth")),
        tuple(spool.get(k) for k in FAULT_COUNTERS),
        uplink.get("state"), uplink.get("detail"), tuple(sorted(uplink.get("refused_topics") or {})),
        tuple(uplink.get(k) for k in UPLINK_FAULTS),
        link_digest(doc.get("link") or {}),
        tuple(sorted((doc.get("commands") or {}).items())),
        doc.get("config_version") and tuple(sorted(doc["config_version"].items())),
        change.get("change_id"), change.get("state"),
    )
