"""Report by exception: a value that sits still is sent once per heartbeat, a value that moves beyond its
deadband is always sent, counts and states on every change — and nothing but readings is ever held back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.driver import Event, Reading
from agent.report_by_exception import ReportByException, TelemetryConfig


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def sent(rbe: ReportByException, *readings: Reading) -> list[object]:
    return [r.value for r in rbe.keep("x", readings) if isinstance(r, Reading)]


def test_still_values_wait_for_the_heartbeat_and_moves_go_at_once() -> None:
    clock = Clock()
    rbe = ReportByException(TelemetryConfig(heartbeat_s=900), clock)
    rtt = lambda v: Reading("probe_rtt_avg_ms", v, "ms", tags={"link": "fibre"})  # noqa: E731
    assert sent(rbe, rtt(20.0)) == [20.0]
    clock.t = 10
    assert sent(rbe, rtt(23.0)) == []  # within 5 ms of what was sent
    assert sent(rbe, rtt(26.0)) == [26.0]
    assert sent(rbe, Reading("probe_rtt_avg_ms", 26.0, "ms", tags={"link": "lte"})) == [26.0]  # another link
    clock.t = 10 + 900
    assert sent(rbe, rtt(26.0)) == [26.0]  # the heartbeat: sent though unchanged
    assert rbe.held == 1


def test_counts_and_states_on_every_change_relative_band_for_measures() -> None:
    rbe = ReportByException(TelemetryConfig(), Clock())
    assert [sent(rbe, Reading("decode_errors", v)) for v in (100, 101, 101)] == [[100], [101], []]
    assert [sent(rbe, Reading("link_up", v)) for v in (True, True, False)] == [[True], [], [False]]
    assert [sent(rbe, Reading("load1", v)) for v in (2.0, 2.05, 2.2)] == [[2.0], [], [2.2]]  # 5 %
    assert [sent(rbe, Reading("link_bytes_day", v, "B")) for v in (1000, 1040, 1060)] == [[1000], [], [1060]]
    assert [sent(rbe, Reading("state", v)) for v in ("a", "a", "b", None)] == [["a"], [], ["b"], [None]]


def test_name_patterns_win_and_off_sends_everything() -> None:
    rbe = ReportByException(TelemetryConfig(deadband={"soil_*": 2.0}), Clock())
    assert [sent(rbe, Reading("soil_moisture", v, "%")) for v in (30.0, 31.5, 32.5)] == [[30.0], [], [32.5]]
    off = ReportByException(TelemetryConfig(report_by_exception=False), Clock())
    assert [sent(off, Reading("soil_moisture", 30.0, "%")) for _ in range(3)] == [[30.0]] * 3


def test_events_are_never_held() -> None:
    rbe = ReportByException(TelemetryConfig(), Clock())
    ev = Event("sensor_alarm", {"a": 1})
    assert rbe.keep("x", (ev, ev)) == (ev, ev)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=60),
       st.floats(min_value=0.1, max_value=50))
def test_no_move_beyond_the_band_is_ever_lost(values: list[float], band: float) -> None:
    """Whatever the sequence, the last value the COC has is within the band of the true value."""
    rbe = ReportByException(TelemetryConfig(deadband={"v": band}), Clock())
    shown = None
    for v in values:
        out = sent(rbe, Reading("v", v))
        if out:
            shown = out[0]
        assert shown is not None and abs(shown - v) <= band
