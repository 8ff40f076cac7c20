"""Run the agent as a real process on a generated config, as systemd would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, broker_port: int, data_dir: Path, password_file: Path | None, **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "site": {"site_id": "t1", "name": "test"},
        "coc": {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0,
                "keepalive_s": 5},
        "data_dir": str(data_dir),
        "host": {"interval_s": 30},
    }
    if password_file is not None:
        cfg["coc"].update({"username": "agent", "password_file": str(password_file)})
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


class AgentProcess:
    """`commune-agent run`, or the test emitter agent when emitter settings are given."""

    def __init__(self, config: Path, log: Path, emitter: dict[str, Any] | Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.emitter = emitter
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        if self.emitter is not None:
            spec = f"@{self.emitter}" if isinstance(self.emitter, Path) else json.dumps(self.emitter)
            argv = [sys.executable, "-m", "tests.support.emitter", str(self.config), spec]
        else:
            argv = [sys.executable, "-m", "agent.cli", "--config", str(self.config), "run"]
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=logf, stderr=subprocess.STDOUT)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
