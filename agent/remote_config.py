"""Remote configuration: a signed COC command stages a whole configuration or a patch of sections, which is
validated as check-config does, applied through the one reload path, and kept only if the box passes the
health gate — otherwise the last-known-good configuration comes back, whatever the change touched."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agent.changes import CHANGE_ID
from agent.config import ConfigError, parse_text
from agent.config_history import (
    FILE_NAME,
    ConfigHistory,
    Version,
    read_pushed,
    write_pushed,
)
from agent.driver import CommandError
from agent.failpoints import failpoint
from agent.guard import CONFIG_OUTCOME_FILE as OUTCOME_FILE
from agent.guard import CONFIG_TRIAL_FILE as TRIAL_FILE
from agent.guard import recover_config
from agent.logs import KvLogger
from agent.statefile import read_json, write_bytes_atomic, write_json

if TYPE_CHECKING:
    from agent.supervisor import Supervisor

KIND = "config"
MAX_FILE_BYTES = 64 * 1024


def history_of(cfg: Any) -> ConfigHistory:
    return ConfigHistory(cfg.data_dir / "fleet" / "config", cfg.fleet.history)


def recover_interrupted(config_path: Path) -> dict[str, Any] | None:
    """A start that finds a configuration change still in its gate (power cut, crash, restart) puts the
    last-known-good configuration back before anything reads it — what the unit's guard does first, done here
    too for a start without the guard; returns the outcome to report."""
    if not (config_path.parent / TRIAL_FILE).exists():
        return None
    recover_config(config_path)
    outcome = read_json(config_path.parent / OUTCOME_FILE)
    return outcome if isinstance(outcome, dict) else None


class RemoteConfig:
    """The `config_apply` and `config_rollback` commands and the gate that decides their fate."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.log = KvLogger("remote_config")
        self.gating: asyncio.Task[None] | None = None
        self.in_trial = False  # from staging to the gate's end: what is loaded then is not a hand edit

    @property
    def config_path(self) -> Path:
        return self.sup.loaded.path

    @property
    def history(self) -> ConfigHistory:
        return history_of(self.sup.config)

    def register(self) -> None:
        self.sup.router.register("config_apply", self.cmd_apply, change=True)
        self.sup.router.register("config_rollback", self.cmd_rollback, change=True)

    def running_version(self) -> Version | None:
        """The version in force; a hand edit loaded at start or reload becomes the last-known-good version."""
        try:
            return self.history.current(self.config_path, commit=not self.in_trial)
        except OSError as exc:
            self.log.warning("config_history_failed", error=exc.strerror or str(exc))
            return None

    async def report_recovered(self) -> None:
        """Tell the COC what a start found interrupted and undid (this process or the guard before it)."""
        path = self.config_path.parent / OUTCOME_FILE
        outcome = read_json(path)
        if isinstance(outcome, dict):
            await self.sup.changes.outcome(str(outcome.get("change_id", "")), KIND, "rolled_back",
                                           str(outcome.get("reason", "")), actor="agent",
                                           **{"from": outcome.get("from"), "to": outcome.get("to")})
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    # -- commands ------------------------------------------------------------------------
    async def cmd_apply(self, args: dict[str, Any]) -> dict[str, Any]:
        change_id = self._change_id(args)
        files = self._files(args)
        if ("config" in args) == ("patch" in args):
            raise CommandError("give exactly one of config (the whole YAML text) or patch (sections)")
        current = self.config_path.read_bytes()
        if "config" in args:
            if not isinstance(args["config"], str):
                raise CommandError("config must be the YAML text as a string")
            text = args["config"].encode("utf-8")
        else:
            text = self._patched(current, args["patch"])
        if files is None:
            files = read_pushed(self.config_path)
        return await self._change(change_id, text, files, self._gate_s(args), origin="coc")

    async def cmd_rollback(self, args: dict[str, Any]) -> dict[str, Any]:
        change_id = self._change_id(args)
        history = self.history
        version = args.get("version")
        if version is None:
            good = history.good()
            older = [v for v in history.versions() if v.meta.get("committed") and good and v.n < good.n]
            if not older:
                raise CommandError("no earlier committed configuration to go back to")
            target = older[-1]
        elif isinstance(version, int) and not isinstance(version, bool):
            found = history.get(version)
            if found is None:
                raise CommandError(f"no configuration version {version} on this box "
                                   f"(kept: {', '.join(str(v.n) for v in history.versions())})")
            target = found
        else:
            raise CommandError("version must be an integer")
        return await self._change(change_id, target.config_bytes(), target.files(), self._gate_s(args),
                                  origin="rollback")

    # -- the change ----------------------------------------------------------------------
    async def _change(self, change_id: str, text: bytes, files: dict[str, bytes], gate_s: float,
                      origin: str) -> dict[str, Any]:
        busy = self.sup.changes.busy
        if busy is not None or self.in_trial:
            raise CommandError(f"another change is in progress ({busy or 'config'}); try again after it ends")
        self.in_trial = True
        try:
            return await self._stage(change_id, text, files, gate_s, origin)
        finally:
            if self.gating is None or self.gating.done():
                self.in_trial = False

    async def _stage(self, change_id: str, text: bytes, files: dict[str, bytes], gate_s: float,
                     origin: str) -> dict[str, Any]:
        history = self.history
        before = self.running_version()
        good = history.good() or before
        if before is None or good is None:
            raise CommandError("the configuration in place cannot be read; refused")
        tracker = self.sup.changes
        frm = before.ref()
        tracker.report(change_id, KIND, "validating", **{"from": frm, "to": None})
        trial = self.config_path.parent / TRIAL_FILE
        try:
            write_json(trial, {"change_id": change_id, "config_path": str(self.config_path),
                               "good_dir": str(good.path), "started": round(time.time(), 3), "gate_s": gate_s,
                               "from": frm, "to": None})
            failpoint("config.staged")
            await asyncio.to_thread(write_pushed, self.config_path, files)
            try:
                why = self._cuts_off(parse_text(text, self.config_path).config)
            except ConfigError as exc:
                why = "config rejected: " + "; ".join(exc.lines)
            if why:
                await asyncio.to_thread(write_pushed, self.config_path, good.files())
                trial.unlink()
                await tracker.outcome(change_id, KIND, "refused", why[:900])
                raise CommandError(why[:900])
            target = await asyncio.to_thread(history.record, text, files, origin, change_id)
            write_json(trial, {**read_json(trial), "to": target.ref()})
        except OSError as exc:
            await tracker.outcome(change_id, KIND, "refused", f"cannot stage the change: {exc.strerror or exc}")
            raise CommandError(f"cannot stage the change: {exc.strerror or exc}") from None
        ok_before = {n for n, d in self.sup.drivers.items() if d.state == "ok"}
        tracker.report(change_id, KIND, "applying", to=target.ref())
        write_bytes_atomic(self.config_path, text)
        failpoint("config.written")
        errors = await self.sup.reload()
        failpoint("config.reloaded")
        if errors:  # it validated a moment ago: the file changed under us, or a key file did
            await self._roll_back(change_id, good, "reload refused it: " + "; ".join(errors))
            raise CommandError("config rejected on reload: " + "; ".join(errors)[:900])
        tracker.report(change_id, KIND, "gating")
        self.gating = asyncio.create_task(self._gate(change_id, target, good, ok_before, gate_s),
                                          name="config-gate")
        return {"change_id": change_id, "state": "gating", "to": target.ref(), "gate_s": gate_s}

    async def _gate(self, change_id: str, target: Version, good: Version, ok_before: set[str],
                    gate_s: float) -> None:
        try:
            why = await self.sup.health_gate(ok_before, gate_s)
            if why is None:
                failpoint("config.gate_passed")
                await asyncio.to_thread(self.history.commit, target)
                failpoint("config.committed")
                (self.config_path.parent / TRIAL_FILE).unlink(missing_ok=True)  # the commit point
                await self.sup.changes.outcome(change_id, KIND, "committed")
            else:
                await self._roll_back(change_id, good, why)
        finally:
            self.in_trial = False
            self.sup.config_version_changed()

    async def _roll_back(self, change_id: str, good: Version, why: str) -> None:
        self.log.warning("config_rolled_back", change_id=change_id, reason=why, to=good.name)
        await asyncio.to_thread(self.history.restore, good, self.config_path)
        errors = await self.sup.reload()
        (self.config_path.parent / TRIAL_FILE).unlink(missing_ok=True)
        if errors:
            why += "; the last-known-good configuration was refused too: " + "; ".join(errors)
        await self.sup.changes.outcome(change_id, KIND, "rolled_back", why[:900], to=good.ref())

    def _cuts_off(self, new: Any) -> str:
        """What in a valid configuration would take the box out of the COC's hands for good, if anything."""
        old = self.sup.config
        if old.fleet.change_key_file is not None and new.fleet.change_key_file is None:
            return ("config rejected: it removes fleet.change_key_file, and with it every later remote change; "
                    "change that on the box itself")
        if new.data_dir != old.data_dir:
            return "config rejected: data_dir cannot change remotely (the spool and the history live there)"
        return ""

    # -- argument checks -----------------------------------------------------------------
    @staticmethod
    def _change_id(args: dict[str, Any]) -> str:
        change_id = args.get("change_id")
        if not isinstance(change_id, str) or not CHANGE_ID.fullmatch(change_id):
            raise CommandError("change_id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
        return change_id

    def _gate_s(self, args: dict[str, Any]) -> float:
        gate = args.get("gate_s", self.sup.config.fleet.gate_s)
        if not isinstance(gate, (int, float)) or isinstance(gate, bool) or not 5 <= gate <= 3600:
            raise CommandError("gate_s must be a number of seconds from 5 to 3600")
        return float(gate)

    @staticmethod
    def _files(args: dict[str, Any]) -> dict[str, bytes] | None:
        files = args.get("files")
        if files is None:
            return None
        if not isinstance(files, dict):
            raise CommandError("files must map a file name to its text")
        out = {}
        for name, text in files.items():
            if not FILE_NAME.fullmatch(name) or name.startswith("."):
                raise CommandError(f"files: bad file name {name[:64]!r} (1-64 of A-Z a-z 0-9 _ . -)")
            if not isinstance(text, str):
                raise CommandError(f"files.{name}: must be text")
            blob = text.encode("utf-8")
            if len(blob) > MAX_FILE_BYTES:
                raise CommandError(f"files.{name}: larger than {MAX_FILE_BYTES} bytes")
            out[name] = blob
        return out

    @staticmethod
    def _patched(current: bytes, patch: Any) -> bytes:
        """The configuration in place with whole top-level sections replaced (null removes one)."""
        if not isinstance(patch, dict) or not patch:
            raise CommandError("patch must map section names to their new content (or null to remove)")
        try:
            data = yaml.safe_load(current) or {}
        except yaml.YAMLError as exc:
            raise CommandError(f"the configuration in place is not valid YAML: {exc}") from None
        for section, body in patch.items():
            if not isinstance(section, str):
                raise CommandError("patch: section names must be strings")
            if body is None:
                data.pop(section, None)
            else:
                data[section] = body
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")
