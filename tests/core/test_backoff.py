"""The one retry pacing: doubling from low, capped at high, reset after success, jitter only shortens."""

from __future__ import annotations

import random

import pytest

from agent.backoff import Backoff


def test_doubles_from_low_up_to_the_cap() -> None:
    b = Backoff(0.5, 5.0)
    assert [b.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_reset_starts_over_at_low() -> None:
    b = Backoff(1.0, 60.0)
    for _ in range(10):
        b.next()
    b.reset()
    assert b.next() == 1.0 and b.next() == 2.0


def test_low_equal_to_high_is_a_fixed_delay() -> None:
    b = Backoff(1.0, 1.0)
    assert [b.next() for _ in range(4)] == [1.0, 1.0, 1.0, 1.0]


def test_other_factor() -> None:
    b = Backoff(1.0, 100.0, factor=3.0)
    assert [b.next() for _ in range(6)] == [1.0, 3.0, 9.0, 27.0, 81.0, 100.0]


@pytest.mark.parametrize("low, high, jitter", [(0, 1, 0), (-1, 1, 0), (2, 1, 0), (1, 2, -0.1), (1, 2, 1.0)])
def test_nonsense_is_refused(low: float, high: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(low, high, jitter=jitter)


def test_jitter_spreads_delays_below_the_nominal_one() -> None:
    random.seed(7)
    delays = []
    for _ in range(200):
        b = Backoff(10.0, 10.0, jitter=0.5)
        delays.append(b.next())
    assert all(5.0 <= d <= 10.0 for d in delays)
    assert max(delays) - min(delays) > 3.0  # spread, not lockstep


def test_never_exceeds_high_nor_falls_below_jittered_nominal() -> None:
    rng = random.Random(42)
    for _ in range(2000):
        low, jitter = rng.uniform(0.001, 100), rng.choice([0.0, rng.uniform(0, 0.99)])
        high = low * rng.uniform(1, 1000)
        b = Backoff(low, high, jitter=jitter)
        nominal = low
        for _ in range(rng.randint(1, 40)):
            d = b.next()
            assert nominal * (1 - jitter) - 1e-9 <= d <= nominal + 1e-9 <= high + 2e-9
            nominal = min(high, nominal * 2)
