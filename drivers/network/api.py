"""The network family's face: the WAN links' live state and the kinds of the link events it emits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.statefile import read_json
from drivers.network.config import NetworkConfig
from drivers.network.statefile import state_path_of

SECTION = "network"  # the supervisor gives the driver <data_dir>/<section>
LINK_EVENTS = ("failover", "failback", "link_down", "link_up", "all_links_down", "balance_changed", "data_budget")


def link_state(data_root: Path, cfg: NetworkConfig | None) -> dict[str, Any] | None:
    """What `commune-agent links` shows (links, their state and reasons, the one in use), read from where the
    section's `state_file` puts it; None without a network section or before the driver wrote it."""
    if cfg is None:
        return None
    doc = read_json(state_path_of(cfg, data_root / SECTION))
    return doc if isinstance(doc, dict) else None
