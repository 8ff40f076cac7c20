"""Automations for officials: warnings waiting for a decision (text, countdown, confirm/cancel), and the rules
with their state (last fired and why, switched on/off). Every decision goes through the `automations` command
and is audited."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from drivers.automations import api as automations
from drivers.console.server import CONSOLE, Console

DECISIONS = {"confirm": "automation_confirm", "cancel": "automation_cancel"}
SWITCHES = {"enable": "automation_enable", "disable": "automation_disable"}


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/automations", page)
    r.add_post("/automations/pending/{id}/{action}", decide)
    r.add_post("/automations/rules/{id}/{action}", switch)


def _section(c: Console) -> Any:
    return getattr(c.agent_cfg, automations.SECTION, None)


def _rules(c: Console) -> list[dict[str, Any]]:
    section = _section(c)
    saved = (automations.live_state(c.root_dir) or {}).get("rules") or {}
    out = []
    for rule in section.rules:
        rs = saved.get(rule.id) or {}
        switched = rs.get("switched")
        out.append({"id": rule.id, "description": rule.description, "trigger": rule.trigger.kind,
                    "enabled": rule.enabled if switched is None else bool(switched), "last_fired": rs.get("last_fired"),
                    "why": rs.get("last_why") or "", "confirm": rule.confirm is not None})
    return out


async def page(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if _section(c) is None:
        return c.render(request, "error.html", status=404, message_key="no_automations")
    now = time.time()
    pending = [{**p, "left_s": max(0, int(p.get("deadline", now) - now))} for p in automations.pending(c.root_dir)]
    return c.render(request, "automations.html", pending=pending, rules=_rules(c), done=request.query.get("done"))


async def _command(request: web.Request, args: dict[str, Any], audit: str, target: str) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if _section(c) is None:
        raise web.HTTPNotFound()
    out = await c.ctx.call_command(automations.COMMAND, args, source=f"console:{request['session'].user}")
    await c.record(request, audit, target, bool(out.get("ok")), out.get("error"))
    if not out.get("ok"):
        return c.render(request, "error.html", status=422, message_key="refused", message_arg=out.get("error"))
    raise web.HTTPSeeOther(f"/automations?done={args['action']}")


async def decide(request: web.Request) -> web.StreamResponse:
    action = request.match_info["action"]
    if action not in DECISIONS:
        raise web.HTTPNotFound()
    pid = request.match_info["id"]
    return await _command(request, {"action": action, "id": pid}, DECISIONS[action], pid)


async def switch(request: web.Request) -> web.StreamResponse:
    action = request.match_info["action"]
    if action not in SWITCHES:
        raise web.HTTPNotFound()
    rule = request.match_info["id"]
    return await _command(request, {"action": action, "rule": rule}, SWITCHES[action], rule)
