"""The automations driver beside the real broadcast driver in one loop (ALSA's file device): a person at the gate
at night rings the chime on the loudspeakers and tells the COC; run modes keep a burst of firings apart."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import pytest

from agent.driver import CommandError, Emittable, Event
from drivers.automations.config import AutomationsConfig
from drivers.automations.driver import AutomationsDriver
from tests.broadcast.harness import TZ, asruns, config, running
from tests.support.alsa import alsa_home
from tests.support.context import RecordingContext
from tests.support.tasks import cancel_and_wait
from tests.support.wait import async_wait_until


class AutomationsContext(RecordingContext):
    """The supervisor's extras for this driver: the tap, and commands answered by the broadcast driver's handler."""

    def __init__(self, config: Any, data_dir: Path, broadcast: RecordingContext) -> None:
        super().__init__("automations", config, data_dir)
        self.broadcast = broadcast
        self.taps: list[Callable[[str, tuple[Emittable, ...]], None]] = []

    async def call_command(self, name: str, args: dict[str, Any], source: str) -> dict[str, Any]:
        try:
            return {"ok": True, **(await self.broadcast.commands[name]({**args, "source": source}) or {})}
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}

    def tap(self, listener: Callable[[str, tuple[Emittable, ...]], None]) -> Callable[[], None]:
        self.taps.append(listener)
        return lambda: self.taps.remove(listener)

    def emitted(self, source: str, *items: Emittable) -> None:
        """What the supervisor does on another driver's emit."""
        for listener in self.taps:
            listener(source, items)


@pytest.fixture
def alsa_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "alsa-out.wav"
    monkeypatch.setenv("HOME", str(alsa_home(tmp_path / "home", out)))
    return out


def _tonight(hour: int) -> float:
    now = datetime.now(TZ)
    return (now.replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()


def test_a_person_at_the_gate_at_night_rings_the_chime_and_tells_the_coc(tmp_path: Path, alsa_out: Path) -> None:
    asyncio.run(_night(tmp_path, alsa_out))


async def _night(tmp_path: Path, alsa_out: Path) -> None:
    rules = AutomationsConfig.model_validate({"rules": [
        {"id": "night", "trigger": {"camera": {"kind": "person", "camera": "gate", "zone": "yard",
                                               "hours": "22:00-05:00"}},
         "actions": [{"chime": {"zones": ["loa"]}},
                     {"event": {"kind": "night_intruder", "text": "{kind} at {camera} in {zone}"}}],
         "cooldown_s": 60}]})
    async with running(config(tmp_path, {"loa": {"type": "soundcard"}}, tts={"engines": ["espeak"]}),
                       tmp_path / "broadcast") as bctx:
        ctx = AutomationsContext(rules, tmp_path / "automations", bctx)
        task = asyncio.create_task(AutomationsDriver().run(ctx))
        try:
            await async_wait_until(lambda: ctx.taps, timeout=5, what="the driver tapping")
            ctx.emitted("cameras", Event("person", {"camera": "gate", "zone": "yard", "phase": "start"},
                                         ts=_tonight(14)))  # by day: nothing
            ctx.emitted("cameras", Event("person", {"camera": "gate", "zone": "porch", "phase": "start"},
                                         ts=_tonight(23)))  # another zone: nothing
            ctx.emitted("cameras", Event("person", {"camera": "gate", "zone": "yard", "phase": "start"},
                                         ts=_tonight(23)))
            [told] = await async_wait_until(lambda: ctx.events_of("night_intruder"), timeout=10, what="COC event")
            assert told.data["text"] == "person at gate in yard"
            played = await async_wait_until(lambda: asruns(bctx, "played"), timeout=20, what="the chime aired")
            assert played[0]["bulletin_id"].startswith("auto-night-") and played[0]["zone"] == "loa"
            assert alsa_out.stat().st_size > 16000  # about a second of the two tones reached the sound card
            assert [e.data["rule"] for e in ctx.events_of("automation_fired")] == ["night"]
        finally:
            await cancel_and_wait(task)


def test_run_modes_single_drops_and_queued_keeps_a_burst(tmp_path: Path) -> None:
    asyncio.run(_modes(tmp_path))


async def _modes(tmp_path: Path) -> None:
    hook = tmp_path / "hook.sh"
    log = tmp_path / "hook.log"
    hook.write_text(f"#!/bin/sh\necho \"start $AUTOMATION_RULE\" >> {log}\nsleep 0.3\n"
                    f"echo \"end $AUTOMATION_RULE\" >> {log}\n")
    hook.chmod(0o755)
    rules = AutomationsConfig.model_validate({"rules": [
        {"id": m, "trigger": {"link": {"kind": "failover"}}, "actions": [{"hook": {"argv": [str(hook)]}}],
         "cooldown_s": 0, "mode": m} for m in ("single", "queued")]})
    ctx = AutomationsContext(rules, tmp_path / "automations", RecordingContext("broadcast", None, tmp_path / "b"))
    task = asyncio.create_task(AutomationsDriver().run(ctx))
    try:
        await async_wait_until(lambda: ctx.taps, timeout=5, what="the driver tapping")
        for _ in range(3):
            ctx.emitted("network", Event("failover", {"from": "a", "to": "b"}))
        await async_wait_until(lambda: log.exists() and log.read_text().count("end queued") == 3, timeout=10,
                               what="three queued runs")
        lines = log.read_text().splitlines()
        assert lines.count("start single") == 1 and ctx.counters["run_dropped"] == 2
        queued = [x for x in lines if x.endswith("queued")]
        assert queued == ["start queued", "end queued"] * 3  # one after another, never overlapping
    finally:
        await cancel_and_wait(task)
