"""Proof it was heard: the amplifier's monitor output on a line-in, measured over each airing, on a sound card that
plays in real time (so the as-run log and the monthly report hold real air time)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from drivers.broadcast.store import DB_FILE, Store
from tests.broadcast.harness import asruns, config, running
from tests.support.alsa import PacedSoundcard
from tests.support.audiofiles import ffmpeg
from tests.support.context import RecordingContext
from tests.support.ports import free_port
from tests.support.wait import async_wait_until

TONE_S = 1.5


@pytest.fixture
def card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PacedSoundcard]:
    dev = PacedSoundcard(tmp_path / "home", tmp_path / "aired.wav")
    monkeypatch.setenv("HOME", str(dev.home))
    try:
        yield dev
    finally:
        dev.close()


async def play(ctx: RecordingContext, bulletin_id: str, audio: Path) -> dict[str, Any]:
    """Air a short recording now on both zones; the sound card's as-run record once the airing is over there."""
    await ctx.commands["broadcast"]({"action": "play-now", "bulletin": {
        "id": bulletin_id, "title": "Thử loa", "audio_file": str(audio), "chime": {"before": False, "after": False}}})
    records = await async_wait_until(lambda: len(r := asruns(ctx, bulletin=bulletin_id)) == 2 and r, timeout=15,
                                     what=f"as-run of {bulletin_id}")
    (amp,) = [r for r in records if r["zone"] == "amp"]
    return amp


def test_the_monitor_hears_an_airing_and_a_silent_one_raises_the_alarm(tmp_path: Path, card: PacedSoundcard) -> None:
    audio = tmp_path / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={TONE_S}:sample_rate=16000", "-ac", "1", str(audio))
    cfg = config(tmp_path, {"amp": {"type": "soundcard", "device": "default",
                                    "monitor": {"device": card.monitor, "heard_dbfs": -40}},
                            # IP speakers whose monitor input names a capture device this box does not have
                            "loa": {"type": "rtp", "group": "239.255.77.4", "port": free_port(socket.SOCK_DGRAM),
                                    "ttl": 0, "interface": "127.0.0.1", "monitor": {"device": "khong-co"}}})

    async def scenario() -> None:
        async with running(cfg, tmp_path / "data") as ctx:
            heard = await play(ctx, "nghe-thay", audio)
            assert heard["outcome"] == "played" and heard["heard"] == "yes", heard
            assert -23 < heard["level_dbfs"] < -17, heard  # the tone, levelled to -20 dBFS, as the line-in heard it
            # real air time: a 1.5 s recording takes 1.5 s on a sound card with a clock (was 2 ms)
            assert TONE_S - 0.25 < heard["ended"] - heard["started"] < TONE_S + 0.5, heard
            assert ctx.state == "ok"
            (broken,) = [r for r in asruns(ctx, bulletin="nghe-thay") if r["zone"] == "loa"]
            assert broken["heard"] == "not monitored" and broken["level_dbfs"] is None
            assert ctx.counters["monitor_failed"] == 1 and ctx.state == "ok"  # counted, not an alarm

            card.cable_cut.set()  # the amplifier's monitor output is silent: amplifier off, cable cut
            silent = await play(ctx, "im-lang", audio)
            assert silent["outcome"] == "played" and silent["heard"] == "no", silent
            assert silent["level_dbfs"] < -90
            alarm = ctx.events_of("airing_silent")
            assert len(alarm) == 1 and alarm[0].severity == "critical"
            assert alarm[0].data["zone"] == "amp" and alarm[0].data["bulletin_id"] == "im-lang"
            assert ctx.counters["airing_silent"] == 1
            assert ctx.state == "degraded" and "not heard: amp" in ctx.states[-1][1]

            card.cable_cut.clear()
            again = await play(ctx, "nghe-lai", audio)
            assert again["heard"] == "yes" and ctx.state == "ok"

    asyncio.run(scenario())
    # the monthly report counts real seconds on air, and which airings were heard
    store = Store(tmp_path / "data" / DB_FILE)
    try:
        rows = store.asrun_report(time.time() - 3600, time.time() + 60)
    finally:
        store.close()
    (row_yes,) = [r for r in rows if r["bulletin_id"] == "nghe-thay" and r["zone"] == "amp"]
    assert TONE_S - 0.25 < row_yes["on_air_s"] < TONE_S + 0.5
    assert sum(r["heard"] for r in rows) == 2 and sum(r["not_heard"] for r in rows) == 1
    assert {r["zone"] for r in rows if r["heard"]} == {"amp"}
    assert card.played_s > 3 * TONE_S - 0.3  # the sound card itself played all three
