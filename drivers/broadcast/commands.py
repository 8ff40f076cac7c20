"""The COC command `broadcast`: create / update / cancel / play-now, validated, with a result."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agent.driver import CommandError
from drivers.broadcast.bulletin import BulletinError, parse_bulletin
from drivers.broadcast.tts import TtsError

if TYPE_CHECKING:
    from drivers.broadcast.driver import Broadcast

ACTIONS = ("create", "update", "cancel", "play-now")


class CommandHandler:
    def __init__(self, svc: Broadcast) -> None:
        self.svc = svc

    def _bulletin(self, args: dict[str, Any], default_schedule: bool = False) -> Any:
        data = args.get("bulletin")
        if default_schedule and isinstance(data, dict) and "schedule" not in data:
            data = {**data, "schedule": {"at": time.strftime("%Y-%m-%dT%H:%M:%S")}}
        try:
            b = parse_bulletin(data, "bulletin", self.svc.cfg.tts.max_chars)
            self.svc.check_zones(b, "bulletin")
        except BulletinError as exc:
            self.svc.ctx.count("bad_command")
            self.svc.log.warning("command_rejected", command="broadcast", error=str(exc))
            raise CommandError(str(exc)) from None
        return b

    async def handle(self, args: dict[str, Any]) -> dict[str, Any]:
        action = args.get("action")
        if action not in ACTIONS:
            self.svc.ctx.count("bad_command")
            raise CommandError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if action == "cancel" or (action == "play-now" and "bulletin" not in args):
            bid = args.get("id")
            if not isinstance(bid, str) or not bid:
                raise CommandError(f"{action} needs id")
            stored = self.svc.store.get(bid)
            if stored is None or stored.status != "active":
                raise CommandError(f"no active bulletin {bid!r}")
            if action == "cancel":
                self.svc.cancel(bid, "coc")
                return {"id": bid, "cancelled": True}
            return await self._play(stored.bulletin)
        if action == "play-now":
            return await self._play(self._bulletin(args, default_schedule=True))
        b = self._bulletin(args)
        stored = self.svc.store.get(b.id)
        exists = stored is not None and stored.status == "active"
        if action == "create" and exists:
            raise CommandError(f"bulletin {b.id!r} already exists; use update")
        if action == "update" and not exists:
            raise CommandError(f"no active bulletin {b.id!r}; use create")
        upcoming = self.svc.accept(b, "coc")
        self.svc.log.info("command_accepted", command="broadcast", action=action, bulletin=b.id)
        return {"id": b.id, "next_airings": upcoming}

    async def _play(self, b: Any) -> dict[str, Any]:
        try:
            return await self.svc.play_now(b)
        except TtsError as exc:
            raise CommandError(f"cannot speak bulletin {b.id!r}: {exc}") from None
