"""The network face: the links' live state is read from where the section's `state_file` puts it."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.network import api as network
from drivers.network.config import NetworkConfig


def test_link_state_follows_the_configured_state_file(tmp_path: Path) -> None:
    doc = {"current": "fiber", "links": [{"name": "fiber", "state": "up"}]}
    (tmp_path / network.SECTION).mkdir()
    (tmp_path / network.SECTION / "wan-now.json").write_text(json.dumps(doc))
    (tmp_path / network.SECTION / "links.json").write_text(json.dumps({"current": "stale"}))
    assert network.link_state(tmp_path, NetworkConfig(state_file=Path("wan-now.json"))) == doc
    elsewhere = tmp_path / "run" / "links.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps(doc))
    assert network.link_state(tmp_path, NetworkConfig(state_file=elsewhere)) == doc


def test_no_section_or_no_file_is_no_state(tmp_path: Path) -> None:
    assert network.link_state(tmp_path, None) is None
    assert network.link_state(tmp_path, NetworkConfig()) is None
