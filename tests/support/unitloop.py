"""What systemd does with the project's unit, without systemd: its own ExecStartPre=/ExecStart= lines (paths
substituted as install.sh does with sed) run in a loop that applies Restart=on-failure, RestartSec=,
RestartForceExitStatus= and StartLimitBurst=/StartLimitIntervalSec=. The behaviour under test is the
unit's and the project's, not a stand-in's."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.agentproc import ROOT

UNIT = ROOT / "systemd" / "commune-agent.service"
CLEAN_SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE}  # a clean end for on-failure


def parse_unit(text: str) -> dict[str, list[str]]:
    """Every key's values in file order ([Unit] and [Service] alike; continuation lines joined)."""
    out: dict[str, list[str]] = {}
    text = text.replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(value: str) -> float:
    """systemd time spans as the unit uses them: `5`, `5s`, `500ms`, `1min`."""
    for suffix, scale in (("ms", 0.001), ("min", 60.0), ("s", 1.0)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * scale
    return float(value)


@dataclass
class Start:
    """One start: when, what ended it (`pre:N`, `main`), its exit code (negative: killed by that signal)."""

    began: float
    phase: str = "pre"
    code: int | None = None
    main_pid: int | None = None


@dataclass
class UnitLoop:
    """Run the unit with /opt/commune-agent -> prefix and /etc/commune-agent -> etc, as root, no sandbox.

    once_env: extra environment for start number once_start only (a failpoint); restart_sec overrides RestartSec= so a
    test does not wait 5 s per restart (every other directive is the unit's)."""

    prefix: Path
    etc: Path
    log: Path
    once_env: dict[str, str] = field(default_factory=dict)
    once_start: int = 1  # which start (1 = the first) gets once_env
    restart_sec: float | None = None
    unit: Path = UNIT
    starts: list[Start] = field(default_factory=list)

    def __post_init__(self) -> None:
        text = self.unit.read_text().replace("/opt/commune-agent", str(self.prefix)).replace(
            "/etc/commune-agent", str(self.etc))
        self.directives = parse_unit(text)
        self.pre = [v for v in self.directives.get("ExecStartPre", [])]
        self.main = self.directives["ExecStart"][-1]
        self.restart = self.directives.get("Restart", ["no"])[-1]
        self.restart_delay = self.restart_sec if self.restart_sec is not None else seconds(
            self.directives.get("RestartSec", ["0.1"])[-1])
        self.force = {int(x) for v in self.directives.get("RestartForceExitStatus", []) for x in v.split()}
        self.burst = int(self.directives.get("StartLimitBurst", ["5"])[-1])
        self.interval = seconds(self.directives.get("StartLimitIntervalSec", ["10"])[-1])
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.prefix), "LANG": "C.UTF-8"}
        for value in self.directives.get("Environment", []):
            for pair in shlex.split(value):
                k, _, v = pair.partition("=")
                if k != "HOME":
                    self.env[k] = v
        self.failed = ""  # why the loop gave up (start limit hit, or a clean end with Restart=on-failure)
        self._stopping = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="unitloop", daemon=True)

    def start(self) -> UnitLoop:
        self._thread.start()
        return self

    def _run(self, line: str, env: dict[str, str], main: bool) -> int:
        ignore = line.startswith("-")
        argv = shlex.split(line.lstrip("-+!@:"))
        with open(self.log, "ab") as logf:
            logf.write(f"unitloop: exec {' '.join(argv[:4])} ...\n".encode())
            logf.flush()
            with self._lock:
                if self._stopping:
                    return 0
                proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=str(self.prefix),
                                        start_new_session=True)
                self._proc = proc
                if main:
                    self.starts[-1].main_pid = proc.pid
            code = proc.wait()
            with self._lock:
                self._proc = None
            if code != 0:  # systemd kills what is left of the unit's processes when it ends
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return 0 if ignore else code

    def _loop(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            recent = [s for s in self.starts if now - s.began < self.interval]
            if self.interval > 0 and self.burst > 0 and len(recent) >= self.burst:
                self.failed = f"start limit hit: {len(recent)} starts in {self.interval:g} s"
                return
            start = Start(now)
            self.starts.append(start)
            env = {**self.env, **(self.once_env if len(self.starts) == self.once_start else {})}
            code = 0
            for i, line in enumerate(self.pre):
                start.phase = f"pre:{i}"
                code = self._run(line, env, main=False)
                if code != 0:
                    break
            else:
                start.phase = "main"
                code = self._run(self.main, env, main=True)
            start.code = code
            if self._stopping:
                return
            if not self._restarts(code):
                self.failed = f"ended with {code}, not restarted (Restart={self.restart})"
                return
            time.sleep(self.restart_delay)

    def _restarts(self, code: int) -> bool:
        if code in self.force:
            return True
        clean = code == 0 or (code < 0 and -code in CLEAN_SIGNALS)
        if self.restart == "always":
            return True
        return self.restart == "on-failure" and not clean

    @property
    def main_pid(self) -> int | None:
        start = self.starts[-1] if self.starts else None
        return start.main_pid if start is not None and start.phase == "main" and start.code is None else None

    def kill9(self) -> None:
        """A power cut of the running service: every process of the current start, at once."""
        with self._lock:
            proc = self._proc
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop(self, timeout: float = 20.0) -> None:
        """systemctl stop: SIGTERM to the main process (KillMode=mixed), SIGKILL to the rest after it."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is not None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._thread.ident is not None:
            self._thread.join(timeout)
