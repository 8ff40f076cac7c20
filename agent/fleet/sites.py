"""The fleet as the broker keeps it: every site's retained birth (`status`), `health` and `change`, read once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.fleet.mqtt import FleetMqtt, Message

DOCS = ("status", "health", "change")


@dataclass
class Site:
    """What the broker holds for one site; any of the three documents may be missing."""

    site: str
    status: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    change: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The row `fleet list` shows, as JSON-ready data."""
        st, he = self.status, self.health
        drivers = he.get("drivers") if isinstance(he.get("drivers"), dict) else {}
        ok = sum(1 for d in drivers.values() if isinstance(d, dict) and d.get("state") == "ok")
        link = he.get("link") if isinstance(he.get("link"), dict) else {}
        site = st.get("site") if isinstance(st.get("site"), dict) else {}
        version = he.get("config_version") or st.get("config_version")
        if not isinstance(version, dict):
            version = {"n": None, "sha": st.get("config_sha")} if st.get("config_sha") else None
        seen = [t for t in (he.get("ts"), st.get("started_at")) if isinstance(t, (int, float))]
        return {
            "site": self.site,
            "name": site.get("name") or "",
            "online": bool(st.get("online")),
            "agent_version": he.get("agent_version") or st.get("agent_version") or st.get("version"),
            "release": he.get("release") or st.get("release"),
            "config_version": version,
            "link": link.get("name"),
            "metered": link.get("metered"),
            "last_seen": max(seen) if seen else None,
            "drivers_ok": ok,
            "drivers_total": len(drivers),
            "change": ({k: self.change.get(k) for k in ("change_id", "kind", "state", "reason")}
                       if self.change else None),
        }


def split_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """(site, document) of `<prefix>/<site>/<document>`, or None for any other topic."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 2 or parts[1] not in DOCS or parts[0] in ("", "releases", "_fleet"):
        return None
    return parts[0], parts[1]


def read_fleet(mq: FleetMqtt) -> dict[str, Site]:
    """Every site with at least one retained document, by site id."""
    mq.subscribe(f"{mq.prefix}/+/{doc}" for doc in DOCS)
    return collect(mq.prefix, mq.sync())


def collect(prefix: str, messages: list[Message]) -> dict[str, Site]:
    sites: dict[str, Site] = {}
    for msg in messages:
        where = split_topic(prefix, msg.topic)
        doc = msg.json()
        if where is None or not isinstance(doc, dict):
            continue
        site = sites.setdefault(where[0], Site(where[0]))
        setattr(site, where[1], doc)
    return dict(sorted(sites.items()))


def fit(text: Any, width: int) -> str:
    """text cut to width with a trailing '~' when it is longer, so a table stays inside 80 columns."""
    s = "-" if text is None or text == "" else str(text)
    return s if len(s) <= width else s[:width - 1] + "~"


def ago(ts: Any, now: float) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    s = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def version_text(v: Any) -> str:
    """`n/sha6` of a config version, `-` when unknown."""
    if not isinstance(v, dict):
        return "-"
    sha = str(v.get("sha") or "")[:6]
    return f"{v['n']}/{sha}" if v.get("n") is not None else (sha or "-")


COLUMNS = (("SITE", 9), ("NAME", 9), ("UP", 3), ("VERSION", 7), ("RELEASE", 8), ("CONFIG", 9), ("LINK", 5),
           ("SEEN", 4), ("DRV", 5), ("CHANGE", 11))  # with one space between: 79 columns


def render_list(rows: list[dict[str, Any]], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [" ".join(f"{name:<{w}}" for name, w in COLUMNS).rstrip()]
    for r in rows:
        change = r["change"] or {}
        cells = (r["site"], r["name"], "yes" if r["online"] else "no", r["agent_version"], r["release"],
                 version_text(r["config_version"]), r["link"], ago(r["last_seen"], now),
                 f"{r['drivers_ok']}/{r['drivers_total']}" if r["drivers_total"] else "-", change.get("state"))
        lines.append(" ".join(f"{fit(c, w):<{w}}" for c, (_, w) in zip(cells, COLUMNS)).rstrip())
    online = sum(1 for r in rows if r["online"])
    lines.append(f"{len(rows)} sites, {online} online")
    return "\n".join(lines)


def render_show(s: Site, now: float | None = None) -> str:
    """One site in detail: identity, versions, link, drivers and the change in progress."""
    now = time.time() if now is None else now
    r = s.summary()
    lines = [f"site:     {fit(r['site'], 30)}  {fit(r['name'], 38)}",
             f"online:   {'yes' if r['online'] else 'no'}   last seen {ago(r['last_seen'], now)} ago",
             f"agent:    {fit(r['agent_version'], 20)}  release {fit(r['release'], 40)}",
             f"config:   {version_text(r['config_version'])}",
             f"link:     {fit(r['link'], 20)}  metered {r['metered'] if r['metered'] is not None else '-'}"]
    drivers = s.health.get("drivers") if isinstance(s.health.get("drivers"), dict) else {}
    lines.append(f"drivers:  {r['drivers_ok']}/{r['drivers_total']} ok")
    for name, d in sorted(drivers.items()):
        d = d if isinstance(d, dict) else {}
        lines.append(f"  {fit(name, 14):<14} {fit(d.get('state'), 9):<9} {fit(d.get('detail'), 52)}")
    ch = s.change
    if ch:
        lines.append(f"change:   {fit(ch.get('change_id'), 40)} {fit(ch.get('kind'), 7)} {fit(ch.get('state'), 11)}")
        if ch.get("reason"):
            lines.append(f"  reason: {fit(ch.get('reason'), 70)}")
        prog = ch.get("progress")
        if isinstance(prog, dict) and prog.get("total"):
            lines.append(f"  progress: {prog.get('bytes')}/{prog.get('total')} bytes")
    else:
        lines.append("change:   -")
    return "\n".join(lines)
