"""The `broadcast` command (COC and console alike): create / update / cancel / play-now / preview / lexicon,
validated."""

from __future__ import annotations

import time
from typing import Any

from agent.audit import audit_event
from agent.driver import CommandError
from drivers.broadcast.api import ACTIONS
from drivers.broadcast.bulletin import Bulletin, BulletinError, parse_bulletin
from drivers.broadcast.lexicon import FILE as LEXICON_FILE
from drivers.broadcast.lexicon import LexiconError
from drivers.broadcast.scheduler import Scheduler
from drivers.broadcast.tts import TtsError

CHANGES = ("create", "update", "cancel", "play-now")  # the actions that change what the loudspeakers say


class BroadcastCommand:
    """One validation and one store for every client; `source` (set by the router) names who asked."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched

    def _bulletin(self, args: dict[str, Any], default_schedule: bool = False) -> Bulletin:
        data = args.get("bulletin")
        if default_schedule and isinstance(data, dict) and "schedule" not in data:
            data = {**data, "schedule": {"at": time.strftime("%Y-%m-%dT%H:%M:%S")}}
        try:
            b = parse_bulletin(data, "bulletin", self.sched.cfg.tts.max_chars)
            self.sched.check_zones(b, "bulletin")
        except BulletinError as exc:
            self.sched.ctx.count("bad_command")
            self.sched.log.warning("command_rejected", command="broadcast", error=str(exc))
            raise CommandError(str(exc)) from None
        return b

    async def handle(self, args: dict[str, Any]) -> dict[str, Any]:
        """Run one action; a change made by anyone but the console (which audits its own, with the user's role
        and address) raises an `audit` event naming the actor (`coc`, `automation:<rule>`, ...)."""
        result = await self._handle(args)
        action, source = args.get("action"), str(args.get("source") or "coc")
        changed = action in CHANGES or (action == "lexicon" and args.get("op", "get") != "get")
        if changed and not source.startswith("console:"):
            target = "lexicon" if action == "lexicon" else str(result.get("id") or args.get("id") or "")
            await self.sched.ctx.emit(audit_event(source, f"bulletin_{action}" if action != "lexicon"
                                                  else f"lexicon_{args.get('op')}", target))
        return result

    async def _handle(self, args: dict[str, Any]) -> dict[str, Any]:
        action = args.get("action")
        source = str(args.get("source") or "coc")
        if action not in ACTIONS:
            self.sched.ctx.count("bad_command")
            raise CommandError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if action == "lexicon":
            return await self._lexicon(args, source)
        if action == "preview":
            return await self._preview(self._bulletin(args, default_schedule=True))
        if action == "cancel" or (action == "play-now" and "bulletin" not in args):
            bid = args.get("id")
            if not isinstance(bid, str) or not bid:
                raise CommandError(f"{action} needs id")
            stored = self.sched.store.get(bid)
            if stored is None or stored.status != "active":
                raise CommandError(f"no active bulletin {bid!r}")
            if action == "cancel":
                self.sched.cancel(bid, source)
                return {"id": bid, "cancelled": True}
            return await self._play(stored.bulletin)
        if action == "play-now":
            b = self._bulletin(args, default_schedule=True)
            if self.sched.store.get(b.id) is not None:  # its as-run rows would pass for that bulletin's
                self.sched.ctx.count("bad_command")
                raise CommandError(f"bulletin {b.id!r} exists: play it by id, or give this one an id of its own")
            return await self._play(b)
        b = self._bulletin(args)
        stored = self.sched.store.get(b.id)
        exists = stored is not None and stored.status == "active"
        if action == "create" and exists:
            raise CommandError(f"bulletin {b.id!r} already exists; use update")
        if action == "update" and not exists:
            raise CommandError(f"no active bulletin {b.id!r}; use create")
        upcoming = self.sched.accept(b, source)
        self.sched.log.info("command_accepted", command="broadcast", action=action, bulletin=b.id, source=source)
        return {"id": b.id, "next_airings": upcoming}

    async def _lexicon(self, args: dict[str, Any], source: str) -> dict[str, Any]:
        """Read or change the pronunciation lexicon (a district's push from the COC, an official's edit), saved
        before it is used; `if_version` refuses a change made on a lexicon someone else changed meanwhile."""
        lex = self.sched.airing_audio.lexicon
        op = args.get("op", "get")
        if op == "get":
            return lex.doc()
        try:
            if "if_version" in args and args["if_version"] != lex.version:
                raise LexiconError(f"the lexicon changed meanwhile (version {lex.version}); reload and edit again")
            doc = lex.change(str(op), args, source)
        except LexiconError as exc:
            self.sched.ctx.count("bad_command")
            self.sched.log.warning("command_rejected", command="broadcast", action="lexicon", error=str(exc))
            raise CommandError(str(exc)) from None
        if not await self.sched.ctx.write_state(LEXICON_FILE, doc):
            raise CommandError("the lexicon could not be saved on this box")
        lex.adopt(doc)
        self.sched.rerender()
        self.sched.log.info("lexicon_changed", op=op, version=doc["version"], entries=len(doc["entries"]),
                            source=source)
        return {"version": doc["version"], "entries": len(doc["entries"])}

    async def _play(self, b: Bulletin) -> dict[str, Any]:
        try:
            return await self.sched.play_now(b)
        except TtsError as exc:
            raise CommandError(f"cannot speak bulletin {b.id!r}: {exc}") from None

    async def _preview(self, b: Bulletin) -> dict[str, Any]:
        try:
            return await self.sched.preview(b)
        except TtsError as exc:
            raise CommandError(f"cannot speak bulletin {b.id!r}: {exc}") from None
