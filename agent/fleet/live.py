"""What `fleet show SITE` asks a site that is online: the read commands of the families it runs (bulletins,
cameras, sensors, links), answered in seconds; a site that does not answer is shown from its retained documents."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from agent.commands import sign
from agent.fleet.mqtt import FleetMqtt
from agent.section import read_key_file

# driver section (as health names it) -> the read command that answers for it
READS = {"broadcast": "bulletins", "cameras": "cameras", "sensors": "sensors", "network": "links"}
ANSWER_S = 5.0


def ask_site(mq: FleetMqtt, site: str, drivers: list[str], key_file: Any, timeout: float = ANSWER_S
             ) -> dict[str, dict[str, Any]] | None:
    """name -> result of each read command the site answered within `timeout` (signed when the fleet has the
    command key); empty when it answered none; None when it runs no family that has one."""
    names = [READS[d] for d in sorted(drivers) if d in READS]
    if not names:
        return None
    base = f"{mq.prefix}/{site}"
    mq.subscribe([f"{base}/cmd/{n}/result" for n in names])
    key = read_key_file(key_file) if key_file is not None else None
    asked: dict[str, str] = {}
    for name in names:
        rid = f"show-{secrets.token_hex(6)}"
        body: dict[str, Any] = {"request_id": rid, "limit": 500} if name != "links" else {"request_id": rid}
        if key is not None:
            body["ts"] = time.time()
            body["sig"] = sign(key, site, name, body)
        mq.send(f"{base}/cmd/{name}", json.dumps(body, ensure_ascii=False))
        asked[rid] = name
    answers: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < len(asked):
        msg = mq.get(deadline - time.monotonic())
        if msg is None:
            break
        doc = msg.json()
        if isinstance(doc, dict) and doc.get("request_id") in asked and msg.topic.endswith("/result"):
            answers[asked[doc["request_id"]]] = doc
    return answers


def _zone_news(z: dict[str, Any]) -> str:
    """A zone's last airing (heard or not on its monitor) and which of its loudspeakers answer."""
    last = z.get("last_airing") or {}
    text = f"last {last.get('outcome') or '-'}"
    if last.get("heard") in ("yes", "no"):
        text += f" heard {last['heard']}"
    speakers = [s for s in z.get("speakers") or [] if isinstance(s, dict)]
    down = [str(s.get("name"))[:16] for s in speakers if s.get("up") is False]
    if speakers:
        text += f", speakers {len(speakers) - len(down)}/{len(speakers)} up"
    if down:
        text += f" DOWN: {', '.join(down)}"[:60]
    return text


def render_live(answers: dict[str, dict[str, Any]]) -> list[str]:
    """The lines `fleet show` adds for what the site answered (an error shows as such)."""
    lines: list[str] = []
    for name in ("bulletins", "cameras", "sensors", "links"):
        res = answers.get(name)
        if res is None:
            continue
        if not res.get("ok"):
            lines.append(f"{name + ':':<10}error: {str(res.get('error'))[:60]}")
            continue
        if name == "bulletins":
            lines.append(f"bulletins: {res.get('total')} active")
            for b in res.get("items", [])[:10]:
                nxt = (b.get("next_airings") or ["-"])[0]
                lines.append(f"  {str(b.get('id'))[:24]:<24} next {str(nxt)[:25]:<25} {str(b.get('title'))[:20]}")
            for zone, z in sorted((res.get("zones") or {}).items()):
                lines.append(f"  zone {zone[:16]:<16} {str(z.get('type')):<9} {_zone_news(z)}")
        elif name == "cameras":
            lines.append(f"cameras:  {res.get('total')}")
            for c in res.get("items", [])[:20]:
                ev = c.get("last_event") or {}
                state = "online" if c.get("online") else "OFFLINE" if c.get("online") is False else "?"
                lines.append(f"  {str(c.get('name'))[:16]:<16} {state:<8} last {str(ev.get('kind') or '-')[:20]:<20} "
                             f"{str(c.get('problem') or '')[:25]}")
        elif name == "sensors":
            alarms = res.get("alarms") or []
            lines.append(f"sensors:  {res.get('total')} readings, {res.get('alarms_total', len(alarms))} alarm(s)")
            for a in alarms[:10]:
                lines.append(f"  ALARM {str(a.get('device'))[:20]:<20} {str(a.get('reading'))[:20]:<20} "
                             f"{a.get('value')}")
        else:
            links = res.get("links") if isinstance(res.get("links"), list) else []
            lines.append(f"links:    {len(links)} configured, in use {res.get('current') or '-'}")
            for link in links[:8]:
                lines.append(f"  {str(link.get('name'))[:16]:<16} {str(link.get('state'))[:10]:<10} "
                             f"{str(link.get('reason') or '')[:45]}")
    return lines
