"""The automations driver: watches what the drivers emit, runs the rule engine on the wall clock, acts, asks
officials first when a rule says so, and keeps its state on disk so a restart resumes every timer."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from typing import Any

from agent.driver import CommandError, Emittable, Event, Priority
from agent.statefile import read_json
from drivers.automations import api
from drivers.automations.actions import CHIME_FILE, ActionContext, Actions, spoken_text, write_chime
from drivers.automations.config import AutomationsConfig, Rule
from drivers.automations.rules import Engine, Firing
from drivers.automations.state import Pending, State

MAX_SLEEP_S = 30.0  # a wall clock that jumps is noticed within this
STOP_SAVE_TIMEOUT_S = 2.0


class AutomationsDriver:
    """One engine for all rules; each rule's runs kept apart so its run mode can be honoured."""

    async def run(self, ctx: ActionContext) -> None:
        cfg: AutomationsConfig = ctx.config
        self.ctx = ctx
        self.cfg = cfg
        self.rules = {r.id: r for r in cfg.rules}
        state = State.from_json(read_json(ctx.data_dir / api.STATE_FILE), set(self.rules))
        self.engine = Engine(cfg.rules, ctx.timezone, state)
        self.engine.link = ctx.link.name
        self.actions = Actions(ctx, write_chime(ctx.data_dir / CHIME_FILE))
        self.runs: dict[str, deque[asyncio.Task[None]]] = {r: deque() for r in self.rules}
        self.wake = asyncio.Event()
        ctx.on_command(api.COMMAND, self.command)
        untap = ctx.tap(self._tap)
        ctx.log.info("automations_started", rules=len(self.rules), pending=len(state.pending),
                     timers=sum(len(s.timers) for s in state.rules.values()))
        ctx.health("ok", "{n} rules", n=len(self.rules))
        try:
            await self._handle(self.engine.start(time.time()))
            while True:
                now = time.time()
                await self._handle(self.engine.tick(now))
                await self._deadlines(now)
                self._save()
                self.wake.clear()
                soon = [t for t in (self.engine.next_wake(), self._next_deadline()) if t is not None]
                delay = min([MAX_SLEEP_S] + [max(0.0, t - time.time()) for t in soon])
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
        finally:
            untap()
            for runs in self.runs.values():
                for task in runs:
                    task.cancel()
            try:
                async with asyncio.timeout(STOP_SAVE_TIMEOUT_S):
                    await asyncio.shield(self._save(force=True))
            except (TimeoutError, asyncio.CancelledError):
                ctx.log.warning("automations_final_save_incomplete")

    # -- input ------------------------------------------------------------------------------------------------
    def _tap(self, source: str, items: tuple[Emittable, ...]) -> None:
        """On the loop, inside the emitter's emit: evaluate now (cheap), act in tasks of their own."""
        firings = self.engine.feed(source, items, time.time())
        if firings or self.engine.dirty:
            asyncio.get_running_loop().create_task(self._handle(firings))
            self.wake.set()

    async def _handle(self, firings: list[Firing]) -> None:
        for f in firings:
            rule = self.rules[f.rule]
            if f.suppressed is not None:
                self.ctx.count(f"suppressed_{f.suppressed.split(':')[0]}")
                self.ctx.log.info("rule_suppressed", rule=f.rule, reason=f.suppressed, why=f.why)
                continue
            self.ctx.count("fired")
            self.ctx.log.info("rule_fired", rule=f.rule, why=f.why, missed=f.missed, confirm=rule.confirm is not None)
            await self.ctx.emit(Event("automation_fired", {"rule": f.rule, "why": f.why, "values": f.values,
                                                           "text": spoken_text(rule, f.values), "missed": f.missed,
                                                           "confirm": rule.confirm is not None},
                                      severity="warning", source=api.SECTION, priority=Priority.ALARM))
            if rule.confirm is not None:
                await self._ask(rule, f)
            else:
                self._dispatch(rule, f, f"automations:{rule.id}")
        self._save()

    # -- runs -------------------------------------------------------------------------------------------------
    def _dispatch(self, rule: Rule, f: Firing, source: str) -> None:
        """Honour the rule's run mode against its runs still going."""
        runs = self.runs[rule.id]
        while runs and runs[0].done():
            runs.popleft()
        if runs and rule.mode == "single":
            self.ctx.count("run_dropped")
            self.ctx.log.info("run_dropped", rule=rule.id, mode=rule.mode)
            return
        if rule.mode == "restart":
            for task in runs:
                task.cancel()
        after = runs[-1] if runs and rule.mode == "queued" else None
        runs.append(asyncio.get_running_loop().create_task(self._run(rule, f, source, after)))

    async def _run(self, rule: Rule, f: Firing, source: str, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])
        outcomes = await self.actions.run(rule, f, source)
        self.ctx.log.info("run_done", rule=rule.id, outcomes=",".join(outcomes))

    # -- officials first --------------------------------------------------------------------------------------
    async def _ask(self, rule: Rule, f: Firing) -> None:
        assert rule.confirm is not None
        pending = self.engine.state.pending
        while len(pending) >= self.cfg.max_pending:
            oldest = min(pending.values(), key=lambda p: p.created)
            del pending[oldest.id]
            self.ctx.count("pending_dropped")
        p = Pending(uuid.uuid4().hex[:12], rule.id, f.at, f.at + rule.confirm.timeout_s, rule.confirm.on_timeout,
                    f.why, f.values, spoken_text(rule, f.values))
        pending[p.id] = p
        self.engine.dirty = True
        self.wake.set()
        await self._emit_step("automation_pending", p, None, deadline=p.deadline, on_timeout=p.on_timeout)

    async def _emit_step(self, kind: str, p: Pending, by: str | None, **extra: Any) -> None:
        self.ctx.log.info(kind, rule=p.rule, pending=p.id, by=by)
        await self.ctx.emit(Event(kind, {"rule": p.rule, "pending": p.id, "text": p.text, "why": p.why, "by": by,
                                         **extra}, severity="warning", source=api.SECTION, priority=Priority.ALARM))

    def _next_deadline(self) -> float | None:
        return min((p.deadline for p in self.engine.state.pending.values()), default=None)

    async def _deadlines(self, now: float) -> None:
        for p in [p for p in self.engine.state.pending.values() if p.deadline <= now]:
            del self.engine.state.pending[p.id]
            self.engine.dirty = True
            aired = p.on_timeout == "air" and p.rule in self.rules
            await self._emit_step("automation_timeout", p, None, aired=aired)
            if aired:
                self._dispatch(self.rules[p.rule], _firing_of(p), f"automations:{p.rule}:deadline")

    # -- the command (COC, console, CLI) ----------------------------------------------------------------------
    async def command(self, args: dict[str, Any]) -> dict[str, Any]:
        action = args.get("action")
        source = str(args.get("source") or "coc")
        if action not in api.ACTIONS:
            self.ctx.count("bad_command")
            raise CommandError(f"action must be one of {', '.join(api.ACTIONS)}, got {action!r}")
        if action in ("list", "status"):
            return {"rules": [self._rule_doc(r) for r in self.rules.values()],
                    "pending": [vars(p) for p in self.engine.state.pending.values()]}
        if action in ("enable", "disable"):
            rule = self.rules.get(str(args.get("rule")))
            if rule is None:
                self.ctx.count("bad_command")
                raise CommandError(f"no rule {args.get('rule')!r} (rules: {', '.join(self.rules) or 'none'})")
            self.engine.switch(rule.id, action == "enable")
            self._save()
            self.wake.set()
            self.ctx.log.info("rule_switched", rule=rule.id, enabled=action == "enable", by=source)
            await self.ctx.emit(Event("automation_switched", {"rule": rule.id, "enabled": action == "enable",
                                                              "by": source}, source=api.SECTION))
            return self._rule_doc(rule)
        pid = args.get("id")
        p = self.engine.state.pending.get(pid) if isinstance(pid, str) else None
        if p is None:
            raise CommandError(f"no pending warning {pid!r} (already decided, or past its deadline)")
        del self.engine.state.pending[p.id]
        self.engine.dirty = True
        self._save()
        if action == "confirm":
            await self._emit_step("automation_confirmed", p, source)
            if p.rule in self.rules:
                self._dispatch(self.rules[p.rule], _firing_of(p), f"automations:{p.rule}:{source}")
            return {"id": p.id, "rule": p.rule, "confirmed": True}
        await self._emit_step("automation_cancelled", p, source)
        return {"id": p.id, "rule": p.rule, "cancelled": True}

    def _rule_doc(self, rule: Rule) -> dict[str, Any]:
        rs = self.engine.state.rule(rule.id)
        return {"id": rule.id, "enabled": self.engine.enabled(rule), "trigger": rule.trigger.kind,
                "last_fired": rs.last_fired, "last_why": rs.last_why, "today": rs.count if rs.day else 0,
                "next_possible": self.engine.next_possible(rule, time.time()),
                "waiting": sorted(k for k, t in rs.timers.items() if not t.fired)}

    # -- state ------------------------------------------------------------------------------------------------
    def _save(self, force: bool = False) -> asyncio.Future[bool]:
        if force or self.engine.dirty:
            self.engine.dirty = False
            return self.ctx.write_state(api.STATE_FILE, self.engine.state.to_json())
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return done


def _firing_of(p: Pending) -> Firing:
    return Firing(p.rule, p.created, p.values, p.why)
