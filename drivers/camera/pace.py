"""How many frames a second a camera can analyse on a busy box: lowered while decoding falls behind the stream.

Every frame is always decoded (H.264 needs them all), and analysis runs beside decoding (`handoff.py`), so a
slow detector answer never holds decoding up. When decoding itself falls behind (the box's cores are taken),
the analysis gives way: the lag is how far the decoded stream's clock runs behind ours since the connection's
best moment; past LAG_HIGH_S the analysed rate is halved (down to MIN_FPS), and once the lag stays under
LAG_LOW_S for CALM_S it is doubled again, up to the configured rate.
"""

from __future__ import annotations

LAG_HIGH_S = 2.0
LAG_LOW_S = 0.5
CALM_S = 5.0
SETTLE_S = 5.0  # a change needs this long to show in the lag before the next one
MIN_FPS = 1.0


class Pace:
    """The analysed fps to hold now, and why it is below the configured one."""

    def __init__(self, fps: float) -> None:
        self.target = fps
        self.fps = fps
        self.reason: str | None = None
        self.lag_s = 0.0
        self.lowered = 0  # times the rate was lowered, for the heartbeat
        self._best: float | None = None  # min over the connection of (our clock - stream clock)
        self._settle_until = 0.0
        self._calm_since: float | None = None

    def reset(self) -> None:
        """A new connection: its stream clock starts anew."""
        self._best = None
        self.lag_s = 0.0

    def observe(self, now: float, stream_s: float) -> None:
        """After each decoded frame: our monotonic time and the frame's stream time (seconds)."""
        if stream_s <= 0:
            return  # no timestamp from this stream: nothing to judge by
        offset = now - stream_s
        if self._best is None or offset < self._best:
            self._best = offset
        self.lag_s = offset - self._best
        if now < self._settle_until:
            return
        if self.lag_s > LAG_HIGH_S:
            self._calm_since = None
            if self.fps > MIN_FPS:
                self.fps = max(MIN_FPS, self.fps / 2)
                self.lowered += 1
            self.reason = f"decoding {self.lag_s:.1f} s behind the stream"
            self._settle_until = now + SETTLE_S
            self._best = None  # judge the new rate by whether the lag grows again from here
        elif self.lag_s < LAG_LOW_S and self.fps < self.target:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= CALM_S:
                self.fps = min(self.target, self.fps * 2)
                self.reason = None if self.fps >= self.target else self.reason
                self._calm_since = now
                self._settle_until = now + SETTLE_S
        else:
            self._calm_since = None
