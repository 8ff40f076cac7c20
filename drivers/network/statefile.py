"""Where the network driver keeps its live link state (shared with `commune-agent links`)."""

from __future__ import annotations

from pathlib import Path

from drivers.network.config import NetworkConfig


def state_path_of(cfg: NetworkConfig, data_dir: Path) -> Path:
    """Where the driver keeps its live link state (shared with the CLI)."""
    return cfg.state_file if cfg.state_file.is_absolute() else data_dir / cfg.state_file
