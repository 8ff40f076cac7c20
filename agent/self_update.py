"""The `update` change command and what a start owes a release on trial: a signed manifest is checked, the
bundle fetched over the uplink (waiting for an unmetered link unless urgent), installed offline beside the
running release, then the agent exits 75 so the guard starts it; the new release commits only after the
health gate, else goes back (and the guard goes back on its own when the new code cannot)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import guard
from agent.bundle import verify_manifest, wheels_of
from agent.changes import CHANGE_ID, release_root, running_release
from agent.driver import CommandError
from agent.failpoints import failpoint
from agent.guard import Layout, set_link
from agent.logs import KvLogger
from agent.release_fetch import FetchError, ReleaseFetch
from agent.release_install import InstallError, install, prune
from agent.signing import read_public_key
from agent.statefile import read_json, write_json

if TYPE_CHECKING:
    from agent.supervisor import Supervisor

KIND = "release"
JOB_FILE = "update.json"
GUARD_MARGIN_S = 3.0  # the agent ends its own gate this long before the guard's deadline, to say why
PROCESS_START = time.monotonic()
RESTART_EXIT = 75  # the unit's RestartForceExitStatus: systemd starts the guard, which starts the new release


class SelfUpdate:
    """One release change at a time; the job is kept on disk so a restart resumes the download."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.log = KvLogger("self_update")
        self.release = running_release(sup.config.fleet.release_dir)
        self.task: asyncio.Task[None] | None = None

    @property
    def job_path(self) -> Path:
        return self.sup.config.data_dir / "fleet" / JOB_FILE

    @property
    def incoming(self) -> Path:
        return self.sup.config.data_dir / "fleet" / "incoming"

    def layout(self) -> Layout | None:
        root = release_root(self.sup.config.fleet.release_dir)
        return Layout(root) if root is not None and root.is_dir() else None

    def register(self) -> None:
        self.sup.router.register("update", self.cmd_update, change=True)

    # -- at start ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Report an outcome the last start left, gate a release on trial, or resume an update."""
        layout = self.layout()
        if layout is None or self.release is None:
            return
        try:
            await self._start(layout)
        except OSError as exc:  # the layout is not writable: the guard still decides at the next start
            self.log.error("self_update_start_failed", error=exc.strerror or str(exc), path=str(layout.root))

    async def _start(self, layout: Layout) -> None:
        await self._report_last(layout)
        state = layout.read_state() or {}
        trial, last = state.get("trial"), state.get("last")
        job = read_json(self.job_path)
        ended = {d.get("change_id") for d in (trial, last) if isinstance(d, dict)}
        if isinstance(trial, dict) and trial.get("release") == self.release:
            self._spawn(self._gate(layout, trial))
        elif isinstance(job, dict) and job.get("change_id") not in ended:
            self._spawn(self._run_job(job))
        if isinstance(job, dict) and job.get("change_id") in ended:
            self._clear_job(str(job.get("release", "")))

    def _spawn(self, coro: Any) -> None:
        self.task = asyncio.create_task(coro, name="self-update")

    async def _report_last(self, layout: Layout) -> None:
        """An outcome written by the guard or a cut-short commit goes to the COC once."""
        last = (layout.read_state() or {}).get("last")
        if not isinstance(last, dict) or last.get("reported", True):
            return
        change_id = str(last.get("change_id", ""))
        await self.sup.changes.outcome(change_id, KIND, str(last.get("outcome")), str(last.get("reason", "")),
                                       **{"from": last.get("from"), "to": last.get("to")})
        with layout.locked() as state:
            now = state.get("last")
            if isinstance(now, dict) and now.get("change_id") == change_id:
                now["reported"] = True

    # -- the command -----------------------------------------------------------------------------
    async def cmd_update(self, args: dict[str, Any]) -> dict[str, Any]:
        change_id = args.get("change_id")
        if not isinstance(change_id, str) or not CHANGE_ID.fullmatch(change_id):
            raise CommandError("change_id must be [A-Za-z0-9_.:-]{1,64}")
        busy = self.sup.changes.busy
        if (self.task is not None and not self.task.done()) or (busy and busy != change_id):
            raise CommandError(f"another change is in progress ({busy}); one change at a time")
        manifest = args.get("manifest")
        why = self._refusal(manifest, args.get("manifest_sig"))
        to = {"release": manifest.get("release") if isinstance(manifest, dict) else None}
        if why:
            await self.sup.changes.outcome(change_id, KIND, "refused", why,
                                           **{"from": {"release": self.release}, "to": to})
            raise CommandError(why)
        assert isinstance(manifest, dict)
        job = {"change_id": change_id, "manifest": manifest, "manifest_sig": args["manifest_sig"],
               "urgent": bool(args.get("urgent")), "release": manifest["release"], "from": self.release}
        await asyncio.to_thread(write_json, self.job_path, job)
        state = "deferred" if self._held(job) else "downloading"
        self.sup.changes.report(change_id, KIND, state, "waiting for an unmetered link" if state == "deferred" else "",
                                **{"from": {"release": self.release}, "to": to})
        self._spawn(self._run_job(job))
        return {"change_id": change_id, "state": state}

    def _refusal(self, manifest: Any, sig: Any) -> str | None:
        fleet = self.sup.config.fleet
        layout = self.layout()
        if layout is None:
            return "no release layout (fleet.release_dir unset and this agent does not run from one): " \
                   "this box was not installed as releases"
        if self.release is None:
            return f"this agent does not run from a release in {fleet.release_dir}"
        if fleet.release_key_file is None:
            return "fleet.release_key_file is not set: no release key is pinned on this box"
        try:
            key = read_public_key(fleet.release_key_file)
        except ValueError as exc:
            return str(exc)
        why = verify_manifest(manifest, sig, key)
        if why:
            return why
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        if manifest.get("python") != py:
            return f"the release is built for Python {manifest.get('python')}, this box runs {py}"
        if manifest["release"] == self.release:
            return f"release {self.release} is running already"
        included = set(manifest["included"])
        have = layout.root / self.release / "wheels"
        for name, entry in wheels_of(manifest).items():
            path = have / name
            if name not in included and (not path.is_file() or path.stat().st_size != entry["size"]):
                return f"{name} is neither in the bundle nor in the running release {self.release}"
        return None

    def _held(self, job: dict[str, Any]) -> bool:
        link = self.sup.link
        if link.defer_bulk:  # the link's data budget holds even urgent bulk
            return True
        return self.sup.config.fleet.defer_on_metered and link.metered and not job.get("urgent")

    # -- download, install, restart -----------------------------------------------------------------
    async def _run_job(self, job: dict[str, Any]) -> None:
        change_id, manifest = str(job["change_id"]), job["manifest"]
        release = manifest["release"]
        ends = {"from": {"release": self.release}, "to": {"release": release}}
        layout = self.layout()
        try:
            why = self._refusal(manifest, job.get("manifest_sig"))  # the keys or the layout may have changed
            if why or layout is None:
                raise InstallError(why or "no release layout")
            deferred = self._held(job)
            got = {"bytes": 0, "total": manifest["bundle_bytes"]}

            def show() -> None:
                self.sup.changes.report(change_id, KIND, "deferred" if deferred else "downloading",
                                        "waiting for an unmetered link" if deferred else "", progress=dict(got),
                                        **ends)

            def paused() -> bool:
                nonlocal deferred
                held = self._held(job)
                if held != deferred:
                    deferred = held
                    show()
                return held

            def progress(done: int, total: int) -> None:
                got.update(bytes=done, total=total)
                show()

            prefix = self.sup.config.coc.topic_prefix
            fetch = ReleaseFetch(lambda: self.sup.uplink, prefix, manifest, self.incoming, self.log, progress, paused)
            bundle = await fetch.run()
            failpoint("update.download.done")
            self.sup.changes.report(change_id, KIND, "installing", "", **ends)
            await install(layout, manifest, bundle, self.release or "", self.log)
            ok_drivers = sorted(n for n, d in self.sup.drivers.items() if d.state == "ok")
            with layout.locked() as state:
                state["trial"] = {"release": release, "change_id": change_id, "from": self.release, "starts": 0,
                                  "max_starts": self.sup.config.fleet.max_starts,
                                  "deadline_s": self.sup.config.fleet.gate_s, "ok_drivers": ok_drivers,
                                  "started": round(time.time(), 3)}
            failpoint("update.trial.written")
            self._clear_job(release)
            self.sup.changes.report(change_id, KIND, "restarting", "", **ends)
            self.log.info("release_restart", release=release, change_id=change_id)
            self.sup.request_exit(RESTART_EXIT)
        except (InstallError, FetchError) as exc:
            self._clear_job(release)
            await self.sup.changes.outcome(change_id, KIND, "refused", str(exc)[:500], **ends)

    def _clear_job(self, release: str) -> None:
        for path in (self.job_path, self.incoming / f"{release}.tar", self.incoming / f"{release}.part"):
            path.unlink(missing_ok=True)

    # -- the new release's gate ------------------------------------------------------------------------
    async def _gate(self, layout: Layout, trial: dict[str, Any]) -> None:
        change_id = str(trial.get("change_id", ""))
        ends = {"from": {"release": trial.get("from")}, "to": {"release": self.release}}
        self.sup.changes.report(change_id, KIND, "gating", "", **ends)
        left = float(trial.get("deadline_s", 120)) - (time.monotonic() - PROCESS_START) - GUARD_MARGIN_S
        why = await self.sup.health_gate(set(trial.get("ok_drivers") or ()), max(1.0, left))
        outcome = "committed" if why is None else "rolled_back"
        with layout.locked() as state:
            now = state.get("trial")
            if not (isinstance(now, dict) and now.get("release") == self.release):
                return  # the guard ended the trial first; it reports through `last`
            state["trial"] = None
            if why is None:
                state["good"] = self.release
            state["last"] = {"change_id": change_id, "kind": KIND, "outcome": outcome, "reason": why or "",
                             **ends, "ts": round(time.time(), 3), "reported": False}
        failpoint("update.commit.state")
        if why is None:
            set_link(layout.root / "good", str(self.release))
            installed_guard = layout.root.parent / "guard.py"
            if installed_guard.is_file() and not guard.install_copy(Path(guard.__file__), installed_guard):
                self.log.info("guard_kept", path=str(installed_guard), reason="not writable; install.sh updates it")
            failpoint("update.commit.linked")
        await self._report_last(layout)
        if why is None:
            gone = await asyncio.to_thread(prune, layout, {str(self.release), str(trial.get("from"))})
            self.log.info("release_committed", release=self.release, pruned=",".join(gone) or None)
        else:
            self.log.warning("release_gate_failed", release=self.release, reason=why)
            self.sup.request_exit(RESTART_EXIT)
