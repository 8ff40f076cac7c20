"""Staged rollouts: canaries first, then batches; a failure beyond max_failures halts it. The state is one JSON
file per rollout, written atomically after every step, so `fleet rollout resume ID` goes on after the CLI was
stopped and never sends a site the same change twice."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from agent.commands import sign_change
from agent.fleet.config import FleetCliConfig, FleetError
from agent.fleet.mqtt import FleetMqtt, Message
from agent.fleet.sites import fit
from agent.signing import read_private_key
from agent.statefile import write_bytes_atomic

CHANGE_ID_MAX = 64
WAITING = ("sending", "sent")  # a site in "sending" may or may not have the change: its retained doc tells
FINAL = ("committed", "failed")
GOOD, BAD = ("committed",), ("rolled_back", "refused")


def new_id(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class Rollout:
    """One rollout's plan and progress, as kept in `<state_dir>/<id>.json` (mode 0600: it may hold pushed files)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def create(cls, cfg: FleetCliConfig, kind: str, command: str, sites: list[str], common: dict[str, Any],
               per_site: dict[str, dict[str, Any]], canaries: int, batch: int, max_failures: int,
               timeout_s: float) -> Rollout:
        if not sites:
            raise FleetError("no sites to change")
        rid = new_id(kind)
        long = [s for s in sites if len(f"{rid}:{s}") > CHANGE_ID_MAX]
        if long:
            raise FleetError(f"site id too long for a change id ({CHANGE_ID_MAX} characters): {long[0]}")
        data = {"id": rid, "kind": kind, "command": command, "created": time.time(), "state": "running",
                "canaries": canaries, "batch": batch, "max_failures": max_failures, "timeout_s": timeout_s,
                "sites": sites, "common": common, "per_site": per_site,
                "progress": {s: {"state": "pending"} for s in sites}}
        rollout = cls(cfg.rollout_dir() / f"{rid}.json", data)
        rollout.save()
        return rollout

    @classmethod
    def load(cls, cfg: FleetCliConfig, rid: str) -> Rollout:
        if not rid or "/" in rid or rid.startswith("."):
            raise FleetError(f"not a rollout id: {rid!r}")
        path = cfg.rollout_dir() / f"{rid}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FleetError(f"no rollout {rid} in {cfg.rollout_dir()}") from None
        except (OSError, ValueError) as exc:
            raise FleetError(f"rollout file {path} unreadable: {exc}") from None
        return cls(path, data)

    @classmethod
    def all(cls, cfg: FleetCliConfig) -> list[Rollout]:
        out = []
        for path in sorted(cfg.rollout_dir().glob("*.json")):
            try:
                out.append(cls(path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue
        return sorted(out, key=lambda r: r.data.get("created", 0))

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def progress(self) -> dict[str, dict[str, Any]]:
        return self.data["progress"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data["updated"] = time.time()
        write_bytes_atomic(self.path, json.dumps(self.data, indent=1, ensure_ascii=False).encode("utf-8"))
        os.chmod(self.path, 0o600)

    def change_id(self, site: str) -> str:
        return f"{self.id}:{site}"

    def stages(self) -> list[list[str]]:
        sites = self.data["sites"]
        n = min(self.data["canaries"], len(sites))
        out = [sites[:n]] if n else []
        out += [sites[i:i + self.data["batch"]] for i in range(n, len(sites), self.data["batch"])]
        return out

    def counts(self) -> dict[str, int]:
        out = {"committed": 0, "failed": 0, "waiting": 0, "not_sent": 0}
        for p in self.progress.values():
            key = p["state"] if p["state"] in FINAL else "waiting" if p["state"] in WAITING else "not_sent"
            out[key] += 1
        return out

    def summary(self) -> dict[str, Any]:
        d = self.data
        return {"id": self.id, "kind": d["kind"], "state": d["state"], "created": d["created"],
                "canaries": d["canaries"], "batch": d["batch"], "max_failures": d["max_failures"],
                "timeout_s": d["timeout_s"], "sites": len(d["sites"]), **self.counts(),
                "progress": {s: self.progress[s] for s in d["sites"]}}

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a CLI runs this rollout: a second `resume` of it is refused instead of sending twice."""
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FleetError(f"rollout {self.id} is being run by another fleet command", 1) from None
            yield
        finally:
            os.close(fd)


class Runner:
    """Sends the change stage by stage and follows each site's outcome on the broker."""

    def __init__(self, rollout: Rollout, mq: FleetMqtt, cfg: FleetCliConfig, out: Callable[[str], None],
                 wall: Callable[[], float] = time.time) -> None:
        if cfg.change_key_file is None:
            raise FleetError("change_key_file is not set in the fleet config: changes cannot be signed")
        try:
            self.key = read_private_key(cfg.change_key_file.expanduser())
        except ValueError as exc:
            raise FleetError(str(exc)) from None
        self.r = rollout
        self.mq = mq
        self.out = out
        self.wall = wall
        self.prefix = mq.prefix
        self.command = rollout.data["command"]
        self.sites = set(rollout.data["sites"])
        self.seen_state: dict[str, str] = {}

    # -- what the boxes say ----------------------------------------------------------------
    def feed(self, msg: Message) -> None:
        """A site's retained change doc or a command result: its outcome when it names this rollout's change."""
        head = self.prefix + "/"
        if not msg.topic.startswith(head):
            return
        site, _, rest = msg.topic[len(head):].partition("/")
        p = self.r.progress.get(site)
        doc = msg.json()
        if site not in self.sites or p is None or p["state"] not in WAITING or not isinstance(doc, dict):
            return
        cid = self.r.change_id(site)
        if rest == "change" and doc.get("change_id") == cid:
            state = str(doc.get("state"))
            if p["state"] == "sending":  # the box has it: a resume must not send it again
                self._set(site, "sent", sent=p.get("sent") or self.wall())
            if state in GOOD:
                self._finish(site, "committed", "", doc.get("to"))
            elif state in BAD:
                self._finish(site, "failed", f"{state}: {doc.get('reason') or 'no reason given'}", doc.get("to"))
            elif self.seen_state.get(site) != state:
                self.seen_state[site] = state
                self.out(f"        {fit(site, 12):<12} {fit(state, 12)}")
        elif rest == f"cmd/{self.command}/result" and doc.get("request_id") == cid and doc.get("ok") is False:
            self._finish(site, "failed", f"refused: {doc.get('error') or 'no reason given'}", None)

    def _set(self, site: str, state: str, **extra: Any) -> None:
        self.r.progress[site] = {**self.r.progress[site], "state": state, **extra}
        self.r.save()

    def _finish(self, site: str, state: str, reason: str, to: Any) -> None:
        p = self.r.progress[site]
        took = self.wall() - p["sent"] if p.get("sent") else None
        self._set(site, state, reason=reason, done=self.wall(), to=to)
        done = sum(1 for q in self.r.progress.values() if q["state"] in FINAL)
        total = len(self.r.data["sites"])
        secs = f"{took:5.0f} s" if took is not None else "     -"
        if state == "committed":
            self.out(f"[{done:>3}/{total}] {fit(site, 12):<12} committed {secs}  {fit(_to_text(to), 42)}")
            return
        self.out(f"[{done:>3}/{total}] {fit(site, 12):<12} FAILED    {secs}")
        for line in textwrap.wrap(reason, 80, initial_indent="        ", subsequent_indent="        "):
            self.out(line)

    # -- sending -----------------------------------------------------------------------------
    def body(self, site: str) -> dict[str, Any]:
        cid = self.r.change_id(site)
        body = {"request_id": cid, "ts": self.wall(), "change_id": cid, **self.r.data["common"],
                **self.r.data["per_site"].get(site, {})}
        body["sig"] = sign_change(self.key, site, self.command, body)
        return body

    def send(self, site: str) -> None:
        self._set(site, "sending")
        payload = json.dumps(self.body(site), ensure_ascii=False, separators=(",", ":"))
        self.mq.publish(f"{self.prefix}/{site}/cmd/{self.command}", payload)
        self._set(site, "sent", sent=self.wall())

    def _drain(self, timeout: float) -> None:
        msg = self.mq.get(timeout)
        while msg is not None:
            self.feed(msg)
            msg = self.mq.get(0)

    def wait(self, stage: list[str]) -> None:
        """Until every site of the stage has an outcome; one with none within timeout_s has failed."""
        timeout = float(self.r.data["timeout_s"])
        while True:
            open_ = [s for s in stage if self.r.progress[s]["state"] in WAITING]
            if not open_:
                return
            now = self.wall()
            for s in open_:
                if now - self.r.progress[s].get("sent", now) >= timeout:
                    self._finish(s, "failed", f"no answer in {timeout:g} s", None)
            deadline = min(self.r.progress[s].get("sent", now) + timeout for s in open_)
            self._drain(min(1.0, max(0.05, deadline - now)))

    def run(self) -> int:
        """0 when every site committed; 1 when the rollout halted or finished with failures."""
        d = self.r.data
        self.mq.subscribe([f"{self.prefix}/+/change", f"{self.prefix}/+/cmd/{self.command}/result"])
        for msg in self.mq.sync():
            self.feed(msg)
        if d["state"] == "halted" and self.r.counts()["failed"] <= d["max_failures"]:
            d["state"] = "running"
        if d["state"] == "running":
            for n, stage in enumerate(self.r.stages(), 1):
                if self._halted():
                    break
                self._run_stage(n, stage)
            if not self._halted():
                d["state"] = "done"
            self.r.save()
        c = self.r.counts()
        self.out(f"{d['state']}: {c['committed']} committed, {c['failed']} failed, {c['waiting']} waiting, "
                 f"{c['not_sent']} not sent")
        if d["state"] == "halted":
            self.out(f"{c['failed']} failed > max_failures {d['max_failures']}: the sites not sent keep what they "
                     "run; to go on:")
            self.out(f"commune-agent fleet rollout resume {self.r.id} --max-failures N")
        return 0 if d["state"] == "done" and c["failed"] == 0 else 1

    def _halted(self) -> bool:
        if self.r.counts()["failed"] > self.r.data["max_failures"]:
            self.r.data["state"] = "halted"
            self.r.save()
            return True
        return False

    def _run_stage(self, n: int, stage: list[str]) -> None:
        todo = [s for s in stage if self.r.progress[s]["state"] not in FINAL]
        if not todo:
            return
        first = 1 if self.r.data["canaries"] else 0
        name = "canaries" if n == first else f"batch {n - first}"
        self.out(f"stage {n}/{len(self.r.stages())} ({name}): {fit(', '.join(stage), 50)}")
        for s in todo:
            if self.r.progress[s]["state"] in ("pending", "sending"):
                self.send(s)
            self._drain(0)
        self.wait(stage)


def _to_text(to: Any) -> str:
    if isinstance(to, dict):
        if to.get("release"):
            return f"release {to['release']}"
        if to.get("n") is not None:
            return f"config {to['n']}/{str(to.get('sha') or '')[:6]}"
    return ""


def render_status(r: Rollout, now: float | None = None) -> Iterator[str]:
    s = r.summary()
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["created"]))
    yield f"rollout {s['id']}  {s['kind']}  {s['state']}  created {when}"
    yield (f"{s['sites']} sites: {s['committed']} committed, {s['failed']} failed, {s['waiting']} waiting, "
           f"{s['not_sent']} not sent")
    yield (f"canaries {s['canaries']}  batch {s['batch']}  max_failures {s['max_failures']}  "
           f"timeout {s['timeout_s']:g} s")
    yield f"{'SITE':<12} {'STATE':<9} {'SECS':>5}  REASON"
    for site, p in s["progress"].items():
        secs = f"{p['done'] - p['sent']:5.0f}" if p.get("done") and p.get("sent") else "    -"
        yield f"{fit(site, 12):<12} {p['state']:<9} {secs}  {fit(p.get('reason') or _to_text(p.get('to')), 49)}"


def render_rollouts(rollouts: list[Rollout]) -> Iterator[str]:
    yield f"{'ID':<30} {'KIND':<7} {'STATE':<8} {'OK':>4} {'FAIL':>4} {'SITES':>5}  CREATED"
    for r in rollouts:
        s = r.summary()
        when = time.strftime("%m-%d %H:%M", time.localtime(s["created"]))
        yield (f"{fit(s['id'], 30):<30} {s['kind']:<7} {s['state']:<8} {s['committed']:>4} {s['failed']:>4} "
               f"{s['sites']:>5}  {when}")
