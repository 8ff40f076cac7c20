"""Carrying out a firing: bulletins and chimes through the broadcast command, events to the COC, clips, hooks.

Every action goes through a family's public command (ctx.call_command) or the core's emit, so an automated
bulletin meets the same validation, store and as-run log as one an official writes.
"""

from __future__ import annotations

import math
import os
import struct
import time
import wave
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Protocol

from agent.children import ChildTimeout, run_child
from agent.driver import Context, Event
from drivers.automations.config import Action, Rule, SignboardAction
from drivers.automations.rules import Firing
from drivers.broadcast import api as broadcast
from drivers.signboard import api as signboard

CHIME_FILE = "chime.wav"
HOOK_ENV = ("PATH", "LANG", "TZ")  # what a hook inherits; the values come as AUTOMATION_*


class ActionContext(Context, Protocol):
    """The extras an automation needs from the supervisor: the command handlers as a local client, the tap."""

    async def call_command(self, name: str, args: dict[str, Any], source: str) -> dict[str, Any]: ...

    def tap(self, listener: Callable[[str, tuple[Any, ...]], None]) -> Callable[[], None]: ...


def render(template: str, values: dict[str, Any]) -> str:
    """A template with the firing's values in; config validation already checked that every field exists."""
    return template.format_map({k: "" if v is None else v for k, v in values.items()})


def write_chime(path: Path, rate: int = 16000) -> Path:
    """A two-tone attention signal (stdlib only), written once into the family's data dir."""
    if path.is_file():
        return path
    frames = bytearray()
    for freq, dur in ((880.0, 0.35), (660.0, 0.5)):
        n = int(rate * dur)
        for i in range(n):
            fade = min(1.0, i / (0.02 * rate), (n - i) / (0.05 * rate))
            frames += struct.pack("<h", int(0.5 * 32767 * fade * math.sin(2 * math.pi * freq * i / rate)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    tmp.replace(path)
    return path


def bulletin_id(rule: Rule, now: float) -> str:
    """Unique per firing, and recognisable as this rule's: `auto-<rule>-<ms>`."""
    return f"auto-{rule.id}-{int(now * 1000):x}"


def spoken_text(rule: Rule, values: dict[str, Any]) -> str:
    """What the first bulletin of a rule would say (what officials read before they confirm)."""
    for a in rule.actions:
        if a.bulletin is not None:
            return render(a.bulletin.text, values)
    return rule.description or rule.id


class Actions:
    """Runs a rule's actions in order; one failing action is logged and counted, the rest still run."""

    def __init__(self, ctx: ActionContext, chime: Path) -> None:
        self.ctx = ctx
        self.chime = chime

    async def run(self, rule: Rule, firing: Firing, source: str) -> list[str]:
        """The actions' outcomes, one word each ("ok" or the error), in order."""
        out = []
        for i, action in enumerate(rule.actions):
            try:
                await self._one(rule, action, firing, source)
                out.append("ok")
            except Exception as exc:  # a failed action must not stop the next (a chime after a failed bulletin)
                out.append(str(exc)[:200] or type(exc).__name__)
                self.ctx.count("action_failed")
                self.ctx.log.warning("action_failed", rule=rule.id, action=i, error=str(exc)[:200])
        return out

    async def _one(self, rule: Rule, a: Action, f: Firing, source: str) -> None:
        kind: str
        if a.bulletin is not None:
            b = a.bulletin
            await self._broadcast({"id": bulletin_id(rule, time.time()), "title": render(b.title, f.values) or rule.id,
                                   "text": render(b.text, f.values), "priority": b.priority,
                                   **({"zones": b.zones} if b.zones else {}), "chime": {"before": True},
                                   "schedule": {"at": self._now_local(), "repeat": b.repeat, "gap_s": b.gap_s}},
                                  source)
            kind = "bulletin"
        elif a.chime is not None:
            await self._broadcast({"id": bulletin_id(rule, time.time()), "title": f"{rule.id} (chime)",
                                   "audio_file": str(self.chime), "priority": a.chime.priority,
                                   **({"zones": a.chime.zones} if a.chime.zones else {}),
                                   "chime": {"before": False}, "schedule": {"at": self._now_local()}}, source)
            kind = "chime"
        elif a.signboard is not None:
            await self._signboard(rule, a.signboard, f, source)
            kind = "signboard"
        elif a.event is not None:
            await self.ctx.emit(Event(a.event.kind, {"rule": rule.id, "text": render(a.event.text, f.values),
                                                     "why": f.why, "values": f.values}, severity=a.event.severity))
            kind = "event"
        elif a.clip is not None:
            await self._clip(a, f, source)
            kind = "clip"
        else:
            assert a.hook is not None
            await self._hook(rule, a, f)
            kind = "hook"
        self.ctx.log.info("action_done", rule=rule.id, action=kind)

    def _now_local(self) -> str:
        return datetime.fromtimestamp(time.time(), self.ctx.timezone).replace(tzinfo=None).isoformat(
            timespec="milliseconds")

    async def _broadcast(self, bulletin: dict[str, Any], source: str) -> None:
        res = await self.ctx.call_command(broadcast.COMMAND, {"action": "play-now", "bulletin": bulletin}, source)
        if not res.get("ok"):
            raise RuntimeError(f"broadcast refused: {res.get('error')}")

    async def _signboard(self, rule: Rule, s: SignboardAction, f: Firing, source: str) -> None:
        """The rule's one notice (id auto-<rule>), shown again with the new values at each firing."""
        nid = s.id or f"auto-{rule.id}"[:64]
        if s.clear:
            up = (signboard.live_state(self.ctx.data_dir.parent) or {}).get("notices") or []
            if not any(isinstance(n, dict) and n.get("id") == nid for n in up):
                return  # already down: clearing is what the rule wants, not an error
        args: dict[str, Any] = {"action": "clear", "id": nid} if s.clear else {
            "action": "show", "id": nid, "title": render(s.title, f.values) or rule.id,
            "text": render(s.text, f.values), **({"boards": s.boards} if s.boards else {})}
        res = await self.ctx.call_command(signboard.COMMAND, args, source)
        if not res.get("ok"):
            raise RuntimeError(f"signboard refused: {res.get('error')}")

    async def _clip(self, a: Action, f: Firing, source: str) -> None:
        assert a.clip is not None
        clip = f.trigger.get("clip")
        camera = f.trigger.get("camera") or a.clip.camera
        if isinstance(clip, dict) and isinstance(clip.get("id"), str) and not clip.get("pending"):
            res = await self.ctx.call_command("clip", {"camera": camera, "id": clip["id"]}, source)
        else:
            res = await self.ctx.call_command("snapshot", {"camera": camera}, source)
        if not res.get("ok"):
            raise RuntimeError(f"camera refused: {res.get('error')}")

    async def _hook(self, rule: Rule, a: Action, f: Firing) -> None:
        assert a.hook is not None
        env = {k: os.environ[k] for k in HOOK_ENV if k in os.environ}
        env.update({f"AUTOMATION_{k.upper()}": str(v) for k, v in f.values.items()})
        env["AUTOMATION_WHY"] = f.why
        try:
            result = await run_child(a.hook.argv, a.hook.timeout_s, env=env)
        except ChildTimeout:
            raise RuntimeError(f"hook ran over {a.hook.timeout_s:g} s") from None
        if result.code != 0:
            raise RuntimeError(f"hook exited {result.code}: {result.last_words()}")
