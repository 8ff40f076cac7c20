"""A box installed as releases, run by the unit's own lines under UnitLoop, against a real mosquitto with the
per-site ACL the README recommends, and the COC's side: publishing bundles and sending signed `update`s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from agent.bundle import build_bundle
from agent.commands import sign_change
from agent.fleet.enroll import acl_lines
from agent.signing import generate_private_key, read_private_key
from tests.support.agentproc import ROOT, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.releases import agent_wheel, copy_layout, dep_wheels
from tests.support.unitloop import UnitLoop
from tests.support.wait import wait_until

PREFIX = "commune/v1"
CHUNK = 64 * 1024


class Keys:
    """The COC's change and release key pairs."""

    def __init__(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        for name in ("change", "release"):
            if not (d / f"{name}.key").exists():
                generate_private_key(d / f"{name}.key")
        self.dir = d
        self.change = read_private_key(d / "change.key")
        self.release = read_private_key(d / "release.key")


def site_broker(tmp: Path, site: str) -> Broker:
    """mosquitto where the site may write only its own topics and read its commands and the releases."""
    broker = Broker(tmp / "mosquitto", users={site: "site-pass", "coc": "coc-pass"})
    (broker.dir / "acl").write_text("\n".join(["user coc", "topic readwrite #", *acl_lines(PREFIX, site)]) + "\n")
    return broker.start()


class ReleaseBox:
    def __init__(self, tmp: Path, base: Path, keys: Keys, site: str, gate_s: float = 10,
                 once_env: dict[str, str] | None = None, once_start: int = 1, restart_sec: float | None = 0.3,
                 **extra: Any) -> None:
        """restart_sec: None keeps the unit's own RestartSec (a benchmark); tests restart in 0.3 s."""
        self.tmp, self.keys, self.site = tmp, keys, site
        self.broker = site_broker(tmp, site)
        self.prefix = tmp / "opt"
        self.releases = copy_layout(base, self.prefix / "releases")
        shutil.copy(ROOT / "agent" / "guard.py", self.prefix / "guard.py")
        self.etc = tmp / "etc"
        self.etc.mkdir()
        shutil.copy(keys.dir / "change.key.pub", self.etc / "change.pub")
        shutil.copy(keys.dir / "release.key.pub", self.etc / "release.pub")
        self.data = tmp / "data"
        self.config = write_config(
            self.etc / "agent.yaml", self.broker.port, self.data, self.broker.password_file(site),
            site={"site_id": site, "name": "box"}, coc={"username": site},
            fleet={"change_key_file": str(self.etc / "change.pub"), "release_key_file": str(self.etc / "release.pub"),
                   "release_dir": str(self.releases), "gate_s": gate_s, "max_starts": 3}, **extra)
        self.base = f"{PREFIX}/{site}"
        self.rec = Recorder(self.broker.port, topics=(f"{PREFIX}/#",)).start()
        self.log = tmp / "unit.log"
        self.unit = UnitLoop(self.prefix, self.etc, self.log, once_env=once_env or {}, once_start=once_start,
                             restart_sec=restart_sec)
        self.n = 0

    def start(self) -> ReleaseBox:
        self.unit.start()
        self.wait_online()
        return self

    def start_on_link(self, name: str, metered: bool) -> subprocess.Popen[bytes]:
        """The current release's agent (no unit) with a link driver reading self.link_file; the test's
        tests/ package only is added to its path, so the agent itself is the release's."""
        self.link_file = self.tmp / "link.json"
        self.set_link(name, metered)
        path = self.tmp / "pythonpath"
        path.mkdir()
        (path / "tests").symlink_to(ROOT / "tests")
        self.proc = subprocess.Popen(
            [str(self.releases / "current" / "bin" / "python"), "-m", "tests.support.linkagent", str(self.config),
             str(self.link_file)], env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(path), "HOME": str(self.tmp)},
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, cwd=str(self.tmp))
        self.wait_online()
        return self.proc

    def set_link(self, name: str, metered: bool) -> None:
        tmp = self.link_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": name, "metered": metered}))
        tmp.replace(self.link_file)

    def births(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.rec.on(f"{self.base}/status") if m.payload and m.json().get("online")]

    def wait_online(self, release: str | None = None, timeout: float = 60) -> dict[str, Any]:
        return wait_until(lambda: next((b for b in reversed(self.births())
                                        if release is None or b.get("release") == release), None),
                          timeout, what=f"birth of {release or 'any release'}\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def state(self) -> dict[str, Any]:
        return json.loads((self.releases / "state.json").read_text())

    # -- the COC's side ------------------------------------------------------------------------
    def bundle(self, variant: str, release: str) -> tuple[dict[str, Any], str, Path]:
        """Build and sign a bundle against the base release: only the agent wheel differs."""
        wheels = self.tmp / f"wheels-{release}"
        wheels.mkdir()
        for src in (dep_wheels() / "run", agent_wheel(variant)):
            for whl in src.glob("*.whl"):
                shutil.copy(whl, wheels / whl.name)
        base = json.loads((self.releases / "base" / "manifest.json").read_text())
        return build_bundle(wheels, self.tmp / "bundles", release, base, CHUNK, self.keys.release)

    def publish(self, manifest: dict[str, Any], bundle: Path, chunks: list[bytes] | None = None) -> None:
        data = bundle.read_bytes()
        parts = chunks or [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
        for n, part in enumerate(parts):
            self.rec.publish(f"{PREFIX}/releases/{manifest['release']}/{n}", part, retain=True)

    def send(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        rid = f"r{self.n}-{time.monotonic_ns()}"
        body = {"request_id": rid, "ts": time.time(), **body}
        body["sig"] = sign_change(self.keys.change, self.site, name, body)
        self.rec.publish(f"{self.base}/cmd/{name}", json.dumps(body))
        return wait_until(lambda: next((m.json() for m in self.rec.on(f"{self.base}/cmd/{name}/result")
                                        if m.json().get("request_id") == rid), None), 30, what=f"{name} result")

    def offer(self, manifest: dict[str, Any], sig: str, change_id: str, urgent: bool = False) -> dict[str, Any]:
        return self.send("update", {"change_id": change_id, "manifest": manifest, "manifest_sig": sig,
                                    "urgent": urgent})

    def change(self, change_id: str, state: str | None = None, timeout: float = 60) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for m in reversed(self.rec.on(f"{self.base}/change")):
                doc = m.json()
                if doc.get("change_id") == change_id and (state is None or doc.get("state") == state):
                    return doc
            return None
        return wait_until(found, timeout, what=f"change {change_id} {state}\n{self.log_tail()}")

    def events(self, change_id: str) -> list[dict[str, Any]]:
        return [m.json()["data"] for m in self.rec.on(f"{self.base}/event/change")
                if m.json()["data"].get("change_id") == change_id]

    def close(self) -> None:
        self.unit.stop()
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.rec.stop()
        self.broker.stop()


def power_cut_during_update(tmp: Path, base: Path, keys: Keys, failpoint: str, start: int) -> None:
    """Cut the power at one named step of an update (download, install, switch, commit) during the unit's
    start number `start`: the box must come back on a working release, finish the change and tell the COC once."""
    box = ReleaseBox(tmp, base, keys, f"pc{os.getpid()}", once_env={"COMMUNE_AGENT_FAILPOINT": failpoint},
                     once_start=start)
    try:
        _power_cut(box, failpoint)
    finally:
        box.close()


def _power_cut(box: ReleaseBox, failpoint: str) -> None:
    box.start()
    manifest, sig, bundle = box.bundle("next", "r-next")
    box.publish(manifest, bundle)
    assert box.offer(manifest, sig, "pc:s")["ok"] is True
    wait_until(lambda: any(s.code == -9 or s.code == 137 for s in box.unit.starts), 60,
               what=f"the power cut at {failpoint}\n{box.log_tail()}")
    done = box.change("pc:s", "committed", timeout=90)
    assert done["to"] == {"release": "r-next"}
    box.wait_online("r-next")
    wait_until(lambda: box.events("pc:s"), 30, what="the committed event")
    assert [e["outcome"] for e in box.events("pc:s")] == ["committed"]
    # the outcome is marked reported once it is in the spool, which may be a moment after the COC has it
    state = wait_until(lambda: (s := box.state())["last"].get("reported") and s, 20, what="the outcome marked reported")
    assert state["good"] == "r-next" and state["trial"] is None
    assert not [p for p in box.releases.iterdir() if p.name.startswith(".tmp-")]
