"""RefusalHolds: a topic the broker refuses is held with backoff and retried alone, other topics flow."""

from __future__ import annotations

from dataclasses import dataclass

from agent.logs import KvLogger
from agent.refusals import RefusalHolds


@dataclass
class Row:
    topic: str
    n: int = 0


def holds() -> RefusalHolds:
    return RefusalHolds(1.0, 4.0, KvLogger("t.refusals"))


def test_a_refused_topic_is_held_and_the_others_flow() -> None:
    h = holds()
    assert not h and h.split([Row("a")], 0.0, []) == ([Row("a")], [])
    h.refused("a", "Quota exceeded (0x97)", 100.0)
    assert h and "a" in h and h.rejected == 1
    go, held = h.split([Row("a", 1), Row("b", 2), Row("a", 3)], 100.1, [])
    assert go == [Row("b", 2)] and held == [Row("a", 1), Row("a", 3)]
    assert 100.7 <= h.next_retry() <= 101.0  # 1 s less up to 30 % jitter
    assert h.stats(100.0, 20)["a"]["reason"] == "Quota exceeded (0x97)"


def test_a_due_retry_goes_alone_until_the_broker_answers_it() -> None:
    """Once due the topic is read again from the oldest; while a row of it is in flight the later rows wait,
    so a retry taken after a later batch can never be overtaken by it."""
    h = holds()
    h.refused("a", "Quota exceeded (0x97)", 100.0)
    assert not h.due(100.5)
    assert h.due(101.0) and not h.due(101.0)  # told once
    assert h.next_retry() == float("inf")  # nothing else is waiting
    retry = Row("a", 1)
    go, held = h.split([retry, Row("b")], 101.0, [])
    assert go == [retry, Row("b")] and held == []
    go, held = h.split([Row("a", 2), Row("b")], 101.0, [retry])  # the retry is in flight
    assert go == [Row("b")] and held == [Row("a", 2)]
    assert h.accepted("a") and not h and not h.accepted("a")
    assert h.split([Row("a", 2)], 101.0, [retry]) == ([Row("a", 2)], [])


def test_a_retry_refused_again_waits_longer_and_more_refusals_meanwhile_do_not_push_it_back() -> None:
    h = holds()
    h.refused("a", "Quota exceeded (0x97)", 100.0)
    first = h.next_retry()
    h.refused("a", "Quota exceeded (0x97)", 100.2)  # the rest of the same batch: same retry time
    assert h.next_retry() == first and h.topics["a"].count == 2
    assert h.due(first)
    h.refused("a", "Not authorized (0x87)", first)  # the retry refused: the next step of the backoff
    assert 2 * 0.7 <= h.next_retry() - first <= 2.0
    assert h.stats(first, 20)["a"] == {"reason": "Not authorized (0x87)", "count": 3,
                                       "retry_in_s": round(h.next_retry() - first, 1)}
    assert h.rejected == 3


def test_stats_show_at_most_the_limit() -> None:
    h = holds()
    for i in range(30):
        h.refused(f"t{i}", "Not authorized (0x87)", 0.0)
    assert len(h.stats(0.0, 20)) == 20
