"""Traffic counted across a camera's lines, summed per line, class and direction until each report."""

from __future__ import annotations

import time

from agent.driver import Reading
from drivers.camera.config import CameraConfig
from drivers.camera.protocol import LineCount
from drivers.camera.traffic import line_keys


class LineCounts:
    """Crossings from the worker, turned into `traffic_count` readings every `count_interval_s`."""

    def __init__(self, cam: CameraConfig) -> None:
        self.cam = cam
        self.counts: dict[tuple[str, str, str], int] = {}
        self.next_report = time.monotonic() + cam.traffic.count_interval_s

    async def on_count(self, msg: LineCount) -> None:
        key = (msg.line, msg.label, msg.direction)
        self.counts[key] = self.counts.get(key, 0) + 1

    def readings(self, now: float) -> list[Reading]:
        """traffic_count per line, class and direction for the interval just ended (zeros too)."""
        traffic = self.cam.traffic
        if not traffic.lines or now < self.next_report:
            return []
        self.next_report = now + traffic.count_interval_s
        counts, self.counts = self.counts, {}
        interval = traffic.count_interval_s
        return [Reading("traffic_count", counts.get(k, 0), tags={"camera": self.cam.name, "line": k[0], "class": k[1],
                                                                 "direction": k[2], "interval_s": f"{interval:g}"})
                for k in line_keys(traffic.lines)]
