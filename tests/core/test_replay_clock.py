"""The replay memory never forgets on a jumped wall clock: after a forward jump larger than the command window
is corrected, last window's signatures are still refused, across a restart too; on a steady clock it stays small."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agent.commands import CommandRouter, sign
from agent.logs import KvLogger

KEY = b"a-key-for-site-t1-only"
WINDOW = 60
DAY = 86400.0


class Clocks:
    """A wall clock that can jump and a monotonic one that cannot."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0
        self.mono = 5_000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def elapse(self, s: float, wall_jump: float = 0.0) -> None:
        self.mono += s
        self.now += s + wall_jump


def router(clocks: Clocks, replay: Path) -> CommandRouter:
    r = CommandRouter(KvLogger("test.cmd"), 4096, KEY, WINDOW, "t1", replay, wall=clocks.wall, mono=clocks.monotonic)

    async def ping(args: dict) -> dict:
        return {"pong": True}

    r.register("ping", ping)
    return r


def signed(rid: str, ts: float) -> bytes:
    body = {"request_id": rid, "ts": ts}
    body["sig"] = sign(KEY, "t1", "ping", body)
    return json.dumps(body).encode()


def result(r: CommandRouter, raw: bytes) -> dict:
    return asyncio.run(r.handle("ping", raw))


def test_a_restart_on_a_clock_jumped_forward_forgets_nothing(tmp_path: Path) -> None:
    clocks = Clocks()
    replay = tmp_path / "commands-replay.json"
    first = signed("a", clocks.now)
    assert result(router(clocks, replay), first)["ok"] is True
    clocks.elapse(5, wall_jump=DAY)  # a bad time source: the wall clock a day ahead
    assert "window" in result(router(clocks, replay), signed("late", clocks.now - DAY))["error"]
    restarted = router(clocks, replay)  # the agent restarts while the clock is wrong
    assert result(restarted, signed("b", clocks.now))["ok"] is True  # a command as the jumped clock sees it
    clocks.elapse(20, wall_jump=-DAY)  # corrected back: `first` is inside the window again
    assert result(restarted, first) == {"request_id": "a", "ok": False, "error": "replayed command",
                                        "ts": round(clocks.now, 3)}
    assert result(router(clocks, replay), first)["error"] == "replayed command"
    # the file keeps its format: signature -> wall-clock end of its window
    saved = json.loads(replay.read_text())
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in saved.items()) and len(saved) == 2


def test_a_jump_forward_with_commands_accepted_on_it_keeps_the_last_window(tmp_path: Path) -> None:
    """The COC's clock followed the same bad time source: commands were accepted on the jumped clock."""
    clocks = Clocks()
    r = router(clocks, tmp_path / "replay.json")
    before = [signed(f"p{i}", clocks.now - 8 * i) for i in range(5)]
    assert all(result(r, raw)["ok"] for raw in before)
    for i in range(3):
        clocks.elapse(5, wall_jump=DAY if i == 0 else 0.0)
        assert result(r, signed(f"j{i}", clocks.now))["ok"] is True
    clocks.elapse(1, wall_jump=-DAY)
    assert [result(r, raw)["error"] for raw in before] == ["replayed command"] * 5
    assert r.counters["ok"] == 8 and r.counters["rejected_auth"] == 5


def test_on_a_steady_clock_old_signatures_are_forgotten(tmp_path: Path) -> None:
    """Holding signatures through a jump must not grow the memory on a clock that keeps time."""
    clocks = Clocks()
    replay = tmp_path / "replay.json"
    r = router(clocks, replay)
    for i in range(50):
        assert result(r, signed(f"s{i}", clocks.now))["ok"] is True
        clocks.elapse(10)
    # only what falls within about two windows of monotonic time is left
    assert len(r.replay.seen) <= 2 * WINDOW / 10 + 2
    assert len(json.loads(replay.read_text())) == len(r.replay.seen)
