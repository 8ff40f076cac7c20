"""What the box sees (read-only, refreshing itself), and the technician's pages: details, config, doctor, audit."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from agent.masking import mask
from agent.statefile import read_json
from drivers.broadcast import api as broadcast
from drivers.camera import api as camera
from drivers.console.i18n import Lang, link_reason
from drivers.console.server import CONSOLE, Console
from drivers.network import api as network

STALE_STATUS_S = 120
EVENTS_SHOWN = 5  # the newest events in view; the rest of the feed folded under "xem thêm" (a phone's screen)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/status", status_page)
    r.add_get("/status/live", status_live)
    r.add_get("/camera/{camera}/latest.jpg", camera_latest)
    r.add_get("/camera/{camera}/event/{event}.jpg", camera_event)
    r.add_get("/tech", tech_index)
    r.add_get("/tech/status", tech_status)
    r.add_get("/tech/config", tech_config)
    r.add_get("/tech/doctor", tech_doctor)
    r.add_get("/tech/audit", tech_audit)


def gather(c: Console) -> dict[str, Any]:
    """Everything the status page shows, from the same documents `commune-agent status` reads."""
    status = read_json(c.root_dir / "status.json")
    if not isinstance(status, dict) or status.get("stopped"):
        status = None
    links = network.link_state(c.root_dir, getattr(c.agent_cfg, network.SECTION, None))
    cams_state = camera.live_state(c.root_dir)
    cameras = []
    for name, st in sorted(((cams_state or {}).get("cameras") or {}).items()):
        cameras.append({"name": name, "state": st, "latest": camera.latest_snapshot(c.root_dir, name) is not None,
                        "events": list(c.feed.camera_events.get(name, []))[:5]})
    failovers = [e for e in c.feed.events if e["kind"] in network.LINK_EVENTS][:10]
    radio = broadcast.live_state(c.root_dir) or {}
    return {"status": status, "age": time.time() - float(status.get("ts", 0)) if status else None,
            "links": links if isinstance(links, dict) else None, "cameras": cameras, "failovers": failovers,
            "readings": sorted(c.feed.readings.values(), key=lambda r: (r["source"], r["device"], r["name"])),
            "alarms": list(c.feed.alarms.values()), "events": list(c.feed.events), "events_shown": EVENTS_SHOWN,
            "speakers": radio.get("speakers") or {}, "silent": radio.get("silent") or {},
            "now": time.time(), "stale_s": STALE_STATUS_S}


def _render_status(request: web.Request, template: str) -> web.Response:
    c = request.app[CONSOLE]
    lang: Lang = request.get("lang", c.cfg.language)
    return c.render(request, template, s=gather(c), reason=lambda link: link_reason(lang, link))


async def status_page(request: web.Request) -> web.StreamResponse:
    return _render_status(request, "status.html")


async def status_live(request: web.Request) -> web.StreamResponse:
    """The live part alone, fetched again every few seconds by the page's script."""
    return _render_status(request, "status_live.html")


async def camera_latest(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    f = camera.latest_snapshot(c.root_dir, request.match_info["camera"])
    if f is None:
        raise web.HTTPNotFound()
    return web.FileResponse(f, headers={"Content-Type": "image/jpeg", "Cache-Control": "no-store"})


async def camera_event(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    f = camera.event_snapshot(c.root_dir, request.match_info["camera"], request.match_info["event"])
    if f is None:
        raise web.HTTPNotFound()
    return web.FileResponse(f, headers={"Content-Type": "image/jpeg"})


async def tech_index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/tech/status")


async def tech_status(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    docs = {"status.json": read_json(c.root_dir / "status.json"),
            "network/links.json": network.link_state(c.root_dir, getattr(c.agent_cfg, network.SECTION, None)),
            "cameras/state.json": camera.live_state(c.root_dir),
            "broadcast/state.json": broadcast.live_state(c.root_dir)}
    text = {k: json.dumps(v, indent=1, ensure_ascii=False, default=str) for k, v in docs.items() if v is not None}
    return c.render(request, "tech_status.html", docs=text)


async def tech_config(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    data = mask(c.agent_cfg.model_dump(mode="json"))
    return c.render(request, "tech_config.html", text=json.dumps(data, indent=1, ensure_ascii=False))


async def tech_doctor(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    from agent.doctor import run_checks

    results = await asyncio.to_thread(run_checks, c.agent_cfg)
    return c.render(request, "tech_doctor.html", results=results)


async def tech_audit(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    return c.render(request, "tech_audit.html", rows=c.audit.recent(300))
