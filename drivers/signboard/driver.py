"""SignboardDriver: keeps what the boards show (notices, the leaders' schedule, the time, readings), serves the
screen boards' pages, drives the Huidu cards, and puts an emergency airing on every board until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.audit import audit_event
from agent.driver import CommandError, Context, Emittable, Reading
from agent.statefile import read_json
from drivers.broadcast import api as broadcast
from drivers.signboard import api
from drivers.signboard.config import HuiduBoard, ScreenBoard, SignboardConfig
from drivers.signboard.content import DAYS_VI, Content, ContentError, check_entries, check_notice, read_schedule_file
from drivers.signboard.huidu_link import HuiduLink
from drivers.signboard.pages import BoardServer, Hub, load_secrets

SCHEDULE_POLL_S = 5.0
SQLITE_CACHE_KB = 256


class SignboardDriver:
    """One content document, rendered per board: a JSON state for each screen, pages of text for each card."""

    async def run(self, ctx: Context) -> None:
        cfg: SignboardConfig = ctx.config
        self.ctx, self.cfg = ctx, cfg
        self.root = ctx.data_dir.parent
        self.content = Content.from_json(read_json(ctx.data_dir / api.STATE_FILE))
        self.on_air: dict[str, broadcast.OnAir] = {a.zone: a for a in broadcast.on_air_now(self.root)}
        self.emergency: broadcast.OnAir | None = None
        self.readings: dict[str, dict[str, Any]] = {}
        self.hub = Hub()
        self.version = 0
        self.schedule_error: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        site = getattr(ctx, "agent_config", None)
        self.site = (getattr(site.site, "name", "") or ctx.site_id) if site is not None else ctx.site_id
        self.links = {name: HuiduLink(name, b, ctx.timezone, cfg.rotate_s, self._pager(name), ctx.log.child(name),
                                      ctx.count, self._health)
                      for name, b in cfg.boards.items() if isinstance(b, HuiduBoard)}
        screens = [n for n, b in cfg.boards.items() if isinstance(b, ScreenBoard)]
        server = BoardServer(self.hub, load_secrets(ctx.data_dir / api.SECRETS_FILE, screens), self.site,
                             cfg.max_page_clients, ctx.count)
        runner = web.AppRunner(server.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        tasks = [asyncio.create_task(link.run(), name=f"huidu-{n}") for n, link in self.links.items()]
        untap = ctx.tap(self._tap)
        try:
            await web.TCPSite(runner, cfg.listen, cfg.port, reuse_address=True).start()
            ctx.log.info("signboard_listening", address=cfg.listen, port=cfg.port, screens=len(screens),
                         huidu=len(self.links))
            ctx.on_command(api.COMMAND, self.command)
            self._aired()
            if cfg.schedule_file is not None:
                tasks.append(asyncio.create_task(self._watch_schedule(cfg.schedule_file), name="schedule-file"))
            while True:
                await self._refresh()
                await asyncio.sleep(60.0 - time.time() % 60.0 + 0.05)  # the schedule page turns with the day
        finally:
            untap()
            if self._timer is not None:
                self._timer.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.hub.close()
            await runner.cleanup()

    # -- what the boards show ---------------------------------------------------------------------------------
    def _notices(self, board: str) -> list[dict[str, Any]]:
        return [{"id": n.id, "title": n.title, "text": n.text} for n in self.content.notices
                if n.boards is None or board in n.boards]

    def _schedule(self) -> list[dict[str, Any]]:
        return [vars(e) for e in self.content.schedule]

    def _doc(self, board: str, label: str) -> dict[str, Any]:
        e = self.emergency
        return {"v": self.version, "site": self.site, "label": label, "pages": list(self.cfg.pages),
                "rotate_s": self.cfg.rotate_s, "tz": str(self.ctx.timezone), "server_ts": time.time(),
                "notices": self._notices(board), "schedule": self._schedule(), "readings": list(self.readings.values()),
                "emergency": None if e is None else {"id": e.bulletin_id, "title": e.title, "text": e.text or ""}}

    def _pager(self, board: str) -> Any:
        def pages() -> tuple[list[str | None], bool]:
            e = self.emergency
            if e is not None:
                return ["KHẨN CẤP\n" + "\n".join(x for x in (e.title, e.text) if x)], True
            out: list[str | None] = []
            for kind in self.cfg.pages:
                if kind == "notices":
                    out += ["\n".join(x for x in (n["title"], n["text"]) if x) for n in self._notices(board)]
                elif kind == "schedule":
                    out += self._schedule_text()
                elif kind == "clock":
                    out.append(None)
                elif kind == "readings" and self.readings:
                    out.append("\n".join(f"{r['name']}: {r['value']} {r['unit'] or ''}".strip()
                                         for r in self.readings.values()))
            return out or [None], False
        return pages

    def _schedule_text(self) -> list[str]:
        """One page per day with lines, from today on, as the LED cards show it."""
        today = datetime.now(self.ctx.timezone).isoweekday()
        days = sorted({e.day for e in self.content.schedule}, key=lambda d: (d - today) % 7)
        return [DAYS_VI[d - 1] + "\n" + "\n".join(f"{e.time} {e.what}" + (f" ({e.who})" if e.who else "")
                                                  for e in self.content.schedule if e.day == d) for d in days]

    async def _refresh(self) -> None:
        """Every board gets the new state at once: the streams, then the cards."""
        self.version += 1
        docs = {n: self._doc(n, b.label) for n, b in self.cfg.boards.items() if isinstance(b, ScreenBoard)}
        await self.hub.publish(docs)
        for link in self.links.values():
            link.changed.set()
        self._health()

    def _changed(self) -> None:
        asyncio.get_running_loop().create_task(self._refresh())

    # -- emergencies ------------------------------------------------------------------------------------------
    def _aired(self) -> None:
        """The broadcast players took or ended an airing: an emergency whose start has come takes every board;
        one starting a moment later is looked at again then."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        t = time.time()
        now = sorted(self.on_air.values(), key=lambda a: a.starts)
        due = [a for a in now if a.priority == "emergency" and a.starts <= t]
        ahead = [a.starts for a in now if a.priority == "emergency" and a.starts > t]
        if ahead:
            self._timer = asyncio.get_running_loop().call_later(min(ahead) - t, self._aired)
        emergency = due[0] if due else None
        if (emergency and emergency.bulletin_id) != (self.emergency and self.emergency.bulletin_id):
            self.ctx.log.info("signboard_emergency", bulletin=emergency.bulletin_id if emergency else None,
                              ended=self.emergency.bulletin_id if self.emergency and not emergency else None)
            self.emergency = emergency
            self._changed()

    # -- what the other families emit (airings, readings) ----------------------------------------------------
    def _tap(self, source: str, items: tuple[Emittable, ...]) -> None:
        if source == broadcast.SECTION:
            changes = broadcast.on_air_changes(items)
            for phase, airing in changes:
                if phase == "start":
                    self.on_air[airing.zone] = airing
                elif self.on_air.get(airing.zone, airing).bulletin_id == airing.bulletin_id:
                    self.on_air.pop(airing.zone, None)
            if changes:
                self._aired()
            return
        wanted = self.cfg.readings
        fresh = False
        for r in items:
            if isinstance(r, Reading) and r.name in wanted and isinstance(r.value, (int, float)):
                key = f"{r.name}/{r.tags.get('device', '')}"
                self.readings[key] = {"name": r.name, "value": round(float(r.value), 2), "unit": r.unit,
                                      "device": r.tags.get("device"), "ts": r.ts}
                fresh = True
        if fresh:
            self._changed()

    # -- the schedule file ------------------------------------------------------------------------------------
    async def _watch_schedule(self, path: Path) -> None:
        seen: float | None = None
        while True:
            with contextlib.suppress(OSError):
                mtime = path.stat().st_mtime
                if mtime != seen:
                    seen = mtime
                    await self._load_schedule(path)
            await asyncio.sleep(SCHEDULE_POLL_S)

    async def _load_schedule(self, path: Path) -> None:
        try:
            entries = await asyncio.to_thread(read_schedule_file, path)
        except ContentError as exc:
            self.schedule_error = str(exc)
            self.ctx.count("schedule_file_bad")
            self.ctx.log.warning("schedule_file_refused", path=str(path), error=str(exc))
            self._health()
            return
        self.schedule_error = None
        await self._apply_schedule(entries, f"file:{path}")

    async def _apply_schedule(self, entries: list[Any], by: str) -> None:
        self.content.set_schedule(entries, by)
        await self._save()
        self.ctx.log.info("schedule_loaded", lines=len(entries), by=by)
        await self._audit(by, "signboard_schedule", None, f"{len(entries)} lines")
        await self._refresh()

    async def _save(self) -> None:
        doc = {**self.content.to_json(), "boards": self._boards_state()}
        await self.ctx.write_state(api.STATE_FILE, doc)

    # -- the command ------------------------------------------------------------------------------------------
    async def command(self, args: dict[str, Any]) -> dict[str, Any]:
        action = args.get("action")
        by = str(args.get("source") or "coc")
        try:
            if action == "status":
                return {"boards": self._boards_state(), "notices": [vars(n) for n in self.content.notices],
                        "schedule": self._schedule(), "emergency": self.emergency.bulletin_id if self.emergency
                        else None, "pages_open": self.hub.clients}
            if action == "show":
                return await self._show(args, by)
            if action == "clear":
                nid = args.get("id")
                gone = self.content.clear(nid if isinstance(nid, str) else None)
                if nid is not None and not gone:
                    raise ContentError(f"id: no notice {nid!r} on the boards")
                await self._save()
                await self._audit(by, "signboard_clear", nid, f"{gone} notice(s)")
                await self._refresh()
                return {"cleared": gone}
            if action == "schedule":
                entries = check_entries(args.get("entries"))
                await self._apply_schedule(entries, by)
                return {"lines": len(entries)}
        except ContentError as exc:
            self.ctx.count("bad_command")
            self.ctx.log.warning("signboard_refused", action=action, by=by, error=str(exc))
            raise CommandError(str(exc)) from None
        self.ctx.count("bad_command")
        raise CommandError(f"action must be one of {', '.join(api.ACTIONS)}, got {action!r}")

    async def _show(self, args: dict[str, Any], by: str) -> dict[str, Any]:
        bid = args.get("bulletin")
        if bid is not None:
            if args.get("text") is not None:
                raise ContentError("text: give either text or bulletin, not both")
            if getattr(getattr(self.ctx, "agent_config", None), broadcast.SECTION, None) is None:
                raise ContentError("bulletin: this box has no broadcast section", "bulletin", "unknown")
            rec = await asyncio.to_thread(self._bulletin, str(bid))
            if rec is None:
                raise ContentError(f"bulletin: no active bulletin {bid!r}")
            b = rec.bulletin
            args = {**args, "text": b.text or b.title, "title": args.get("title") or b.title,
                    "id": args.get("id") or f"bulletin-{b.id}"}
        notice = check_notice(args, list(self.cfg.boards), self.cfg.notice_max_chars, by)
        notice.bulletin = str(bid) if bid is not None else None
        self.content.add(notice, self.cfg.max_notices)
        await self._save()
        self.ctx.log.info("notice_shown", id=notice.id, by=by, boards=",".join(notice.boards or ["all"]))
        await self._audit(by, "signboard_show", notice.id, notice.text[:200])
        await self._refresh()
        return {"id": notice.id, "boards": notice.boards or list(self.cfg.boards)}

    def _bulletin(self, bid: str) -> broadcast.BulletinRecord | None:
        view = broadcast.open_view(self.root, SQLITE_CACHE_KB)
        try:
            return view.get(bid)
        finally:
            view.close()

    async def _audit(self, actor: str, action: str, target: str | None, detail: str) -> None:
        """A change by anyone but the console (which audits its own, with the user's role and address)."""
        if not actor.startswith("console:"):
            await self.ctx.emit(audit_event(actor, action, target, detail=detail))

    # -- health -----------------------------------------------------------------------------------------------
    def _boards_state(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, b in self.cfg.boards.items():
            link = self.links.get(name)
            out[name] = {"type": b.type, "label": b.label, "state": link.state if link else "ok",
                         "error": link.error if link else None, "sent_at": link.sent_at if link else None}
        return out

    def _health(self) -> None:
        down = [f"{n}: {link.error}" for n, link in self.links.items() if link.state == "down"]
        if down:
            self.ctx.health("degraded", "board down: {boards}", boards="; ".join(down)[:300])
        elif self.schedule_error:
            self.ctx.health("degraded", "schedule file refused: {error}", error=self.schedule_error[:300])
        elif self.emergency is not None:
            self.ctx.health("ok", "emergency on {boards} boards: {bulletin}", boards=len(self.cfg.boards),
                            bulletin=self.emergency.bulletin_id)
        else:
            self.ctx.health("ok", "{boards} boards, {notices} notices, {pages} pages open", boards=len(self.cfg.boards),
                            notices=len(self.content.notices), pages=self.hub.clients)
