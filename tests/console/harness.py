"""The real agent with broadcast (ALSA file device + RTP on loopback) and the console, plus accounts."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.agentproc import ROOT, AgentProcess, write_config
from tests.support.alsa import alsa_home
from tests.support.ports import free_port
from tests.support.wait import wait_until

OFFICIAL = ("canbo", "mat-khau-can-bo")
TECHNICIAN = ("kythuat", "mat-khau-ky-thuat")


def log_in(page: Any, user: tuple[str, str], landing: str = "**/bulletins") -> None:
    """Fill the login form on the page shown (a Playwright page) and wait for where it leads."""
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    page.click("#login button[type=submit]")
    page.wait_for_url(landing)


def add_user(config: Path, name: str, role: str, password: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "agent.cli", "--config", str(config), "user", "add", name, "--role", role,
                    "--password-stdin"], input=password + "\n", text=True, check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, capture_output=True)


@dataclass
class ConsoleAgent:
    """One agent process; `url` is the console's base URL."""

    tmp: Path
    broker_port: int
    password_file: Path | None = None
    console: dict[str, Any] | None = field(default_factory=dict)
    rtp_group: str = "239.255.77.1"
    rtp_port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    broadcast: dict[str, Any] = field(default_factory=dict)
    site_id: str = "t1"  # a second agent on a module's broker takes another: one MQTT client id per site

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = self.tmp / "data"
        self.alsa_out = self.tmp / "alsa-out.wav"
        self.home = alsa_home(self.tmp / "home", self.alsa_out)
        self.rtp_port = self.rtp_port or free_port()
        broadcast = {"zones": {"loa": {"type": "soundcard"},
                               "xom": {"type": "rtp", "group": self.rtp_group, "port": self.rtp_port, "ttl": 0,
                                       "interface": "127.0.0.1"}},
                     "default_zones": ["loa"], "quiet_hours": None, "wake_ahead_s": 1.0, "realtime_priority": 0,
                     "tts": {"engines": ["espeak"]}, **self.broadcast}
        extra: dict[str, Any] = {"site": {"site_id": self.site_id, "name": "test"}, "broadcast": broadcast,
                                 **self.extra}
        if self.console is not None:
            extra["console"] = {"listen": "127.0.0.1", "port": self.port, "login_lockout_s": 30, "refresh_s": 1,
                                 **self.console}
        self.config = write_config(self.tmp / "agent.yaml", self.broker_port, self.data, self.password_file, **extra)
        self.proc = AgentProcess(self.config, self.tmp / "agent.log", env={"HOME": str(self.home)})

    def add_users(self) -> ConsoleAgent:
        for (name, pw), role in ((OFFICIAL, "official"), (TECHNICIAN, "technician")):
            add_user(self.config, name, role, pw)
        return self

    def start(self) -> ConsoleAgent:
        self.proc.start()
        if self.console is not None:
            wait_until(self._up, timeout=30, interval=0.1, what=f"console on {self.url}\n{self._log_tail()}")
        return self

    def _log_tail(self) -> str:
        try:
            return self.proc.log_text()[-3000:]
        except OSError:
            return ""

    def _up(self) -> bool:
        assert self.proc.proc is not None
        if self.proc.proc.poll() is not None:
            raise AssertionError(f"agent exited: {self._log_tail()}")
        try:
            with urllib.request.urlopen(self.url + "/login", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> int:
        return self.proc.stop()

    def restart(self) -> None:
        """SIGTERM, then the same config and data dir again."""
        assert self.stop() == 0, self._log_tail()
        self.start()
