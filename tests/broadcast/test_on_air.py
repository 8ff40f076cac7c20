"""What is on air: a start and an end event per zone airing (the text only for an emergency), and an airing a
power cut left "on air" in the live state is ended at the next start, so no signboard keeps showing it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

from drivers.broadcast.api import STATE_FILE
from tests.broadcast.harness import asruns, config, running
from tests.support.audiofiles import ffmpeg
from tests.support.ports import free_port
from tests.support.wait import async_wait_until


def test_on_air_start_and_end_per_airing_and_a_left_over_one_ended_at_start(tmp_path: Path) -> None:
    audio = tmp_path / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.4:sample_rate=16000", "-ac", "1", str(audio))
    cfg = config(tmp_path, {"loa": {"type": "rtp", "group": "239.255.77.9", "port": free_port(socket.SOCK_DGRAM),
                                    "ttl": 0, "interface": "127.0.0.1"}}, tts={"engines": ["espeak"]})
    data = tmp_path / "data"
    data.mkdir()
    left = {"zone": "loa", "bulletin_id": "lu-cu", "title": "Lũ (trước khi mất điện)", "priority": "emergency",
            "starts": time.time() - 60, "text": "Sơ tán ngay"}
    (data / STATE_FILE).write_text(json.dumps({"on_air": [left]}), encoding="utf-8")

    async def scenario() -> None:
        async with running(cfg, data) as ctx:
            await async_wait_until(lambda: ctx.events_of("on_air"), timeout=5, what="the left-over airing ended")
            (ended,) = [e.data for e in ctx.events_of("on_air")]
            assert ended["phase"] == "end" and ended["bulletin_id"] == "lu-cu" and ended["zone"] == "loa"
            for bid, priority, said in (("hop", "normal", {"audio_file": str(audio)}),
                                        ("lu", "emergency", {"text": "Bà con chú ý"})):
                await ctx.commands["broadcast"]({"action": "play-now", "bulletin": {
                    "id": bid, "title": "Thử", "priority": priority, "chime": {"before": False, "after": False},
                    **said}})
                await async_wait_until(lambda b=bid: asruns(ctx, bulletin=b), timeout=15, what=f"as-run of {bid}")
            events = [e for e in ctx.events_of("on_air")][1:]
            assert [(e.data["bulletin_id"], e.data["phase"], e.severity) for e in events] == [
                ("hop", "start", "info"), ("hop", "end", "info"), ("lu", "start", "warning"), ("lu", "end", "warning")]
            assert "text" not in events[0].data and events[2].data["text"] == "Bà con chú ý"
            row = asruns(ctx, bulletin="lu")[0]
            assert abs(events[2].data["starts"] - row["started"]) < 0.5
            # the live state is written off the loop, after the as-run row: nothing left on air once it lands
            await async_wait_until(lambda: json.loads((data / STATE_FILE).read_text(encoding="utf-8"))["on_air"] == [],
                                   timeout=5, what="the live state with nothing on air")

    asyncio.run(scenario())
