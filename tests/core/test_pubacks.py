"""PubackTracker: PUBACKs from paho's thread matched to the batch that sent them, whatever order they come in."""

from __future__ import annotations

import asyncio
import threading
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agent.pubacks import PubackTracker, reason_text


def rc(value: int) -> ReasonCode:
    return ReasonCode(PacketTypes.PUBACK, identifier=value)


def test_reason_codes_from_0x80_refuse_and_below_accept() -> None:
    """0x10 No matching subscribers is a success; 0x87 Not authorized and 0x97 Quota exceeded refuse."""
    assert reason_text(rc(0x00)) is None and reason_text(rc(0x10)) is None
    assert reason_text(rc(0x87)) == "Not authorized (0x87)"
    assert reason_text(rc(0x97)) == "Quota exceeded (0x97)"
    assert reason_text(0) is None  # MQTT 3.1.1: no reason code, always taken


def test_a_batch_completes_from_pubacks_on_another_thread_and_sorts_them() -> None:
    async def main() -> None:
        tracker: PubackTracker[str] = PubackTracker(asyncio.get_running_loop())
        batch = tracker.track({1: "a", 2: "b", 3: "c"}, time.monotonic())

        def paho() -> None:
            tracker.puback(2, None)
            tracker.puback(1, "Not authorized (0x87)")
            tracker.puback(3, None)

        threading.Thread(target=paho).start()
        assert await tracker.wait(batch, 5.0, asyncio.Event())
        assert batch.accepted() == ["b", "c"]
        assert batch.refused() == [("a", "Not authorized (0x87)")]
        assert batch.unacknowledged() == []

    asyncio.run(main())


def test_a_puback_that_comes_before_its_batch_is_tracked_still_counts() -> None:
    """paho sends from its own thread: a fast broker can acknowledge a message before publish() returns."""
    async def main() -> None:
        tracker: PubackTracker[str] = PubackTracker(asyncio.get_running_loop())
        tracker.puback(7, None)
        tracker.puback(8, "Quota exceeded (0x97)")
        batch = tracker.track({7: "a", 8: "b", 9: "c"}, time.monotonic())
        assert not batch.complete.is_set()
        tracker.puback(9, None)
        assert await tracker.wait(batch, 5.0, asyncio.Event())
        assert batch.accepted() == ["a", "c"] and batch.refused() == [("b", "Quota exceeded (0x97)")]

    asyncio.run(main())


def test_a_status_puback_never_counts_for_a_spool_row_after_the_mid_wraps() -> None:
    """A status publish acknowledged before it was marked ignored must not leave its mid marked: 65535 ids
    later the same mid carries a spool row, and that row's PUBACK has to count."""
    async def main() -> None:
        tracker: PubackTracker[str] = PubackTracker(asyncio.get_running_loop())
        tracker.puback(42, None)  # the status publish's PUBACK, before ignore()
        tracker.ignore(42)
        tracker.ignore(43)  # another status publish, acknowledged after
        tracker.puback(43, None)
        batch = tracker.track({42: "row", 43: "next"}, time.monotonic())  # the ids came round again
        tracker.puback(42, None)
        tracker.puback(43, None)
        assert await tracker.wait(batch, 1.0, asyncio.Event())
        assert batch.accepted() == ["row", "next"]

    asyncio.run(main())


def test_the_wait_runs_on_while_pubacks_come_and_ends_once_they_stop() -> None:
    """The timeout counts from the last PUBACK: a slow link that acknowledges every 0.1 s keeps a batch whose
    whole acknowledgement takes longer than the patience; a silent one ends after it, and a PUBACK that comes
    after that counts for nothing (not for a later batch with the same mid)."""
    async def main() -> None:
        tracker: PubackTracker[str] = PubackTracker(asyncio.get_running_loop())
        slow = tracker.track({i: f"r{i}" for i in range(1, 7)}, time.monotonic())

        async def trickle() -> None:
            for i in range(1, 7):
                await asyncio.sleep(0.1)
                tracker.puback(i, None)

        t0 = time.monotonic()
        feeder = asyncio.create_task(trickle())
        assert await tracker.wait(slow, 0.35, asyncio.Event())
        await feeder
        assert time.monotonic() - t0 > 0.5 and len(slow.accepted()) == 6

        silent = tracker.track({20: "x", 21: "y"}, time.monotonic())
        tracker.puback(20, None)
        t0 = time.monotonic()
        assert not await tracker.wait(silent, 0.3, asyncio.Event())
        assert 0.25 < time.monotonic() - t0 < 2.0
        assert silent.accepted() == ["x"] and silent.unacknowledged() == ["y"]
        tracker.puback(21, None)  # too late
        later = tracker.track({21: "z"}, time.monotonic())
        assert not later.complete.is_set()

    asyncio.run(main())


def test_the_connection_closing_ends_the_wait() -> None:
    async def main() -> None:
        tracker: PubackTracker[str] = PubackTracker(asyncio.get_running_loop())
        batch = tracker.track({1: "a"}, time.monotonic())
        closed = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, closed.set)
        t0 = time.monotonic()
        assert not await tracker.wait(batch, 30.0, closed)
        assert time.monotonic() - t0 < 5.0 and batch.unacknowledged() == ["a"]

    asyncio.run(main())
