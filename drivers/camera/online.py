"""Whether a camera delivers frames: heartbeats, stream status, the problem text and the debounced online state."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent.driver import Context, Event
from agent.logs import KvLogger
from drivers.camera.config import CameraConfig, CamerasConfig
from drivers.camera.protocol import Heartbeat, Status


class OnlineState:
    """Fed by the worker's heartbeats and status messages; `transition` turns flips into camera_online/offline."""

    def __init__(self, cam: CameraConfig, cfg: CamerasConfig, ctx: Context, log: KvLogger) -> None:
        self.cam = cam
        self.cfg = cfg
        self.ctx = ctx
        self.log = log
        self.stream_seen = asyncio.Event()  # the clip recorder starts once the worker has reached the camera
        self.started = time.monotonic()
        self.first_heartbeat: float | None = None
        self.last_frame = 0.0  # monotonic, derived from heartbeats
        self.flowing_since: float | None = None
        self.online: bool | None = None  # None until the first decision
        self.reported_offline = False  # camera_online only follows a camera_offline
        self.heartbeat: dict[str, Any] = {}  # the latest heartbeat's fields
        self.problem = ""  # why frames do not flow (stream or ONVIF), what camera_offline says

    async def on_heartbeat(self, msg: Heartbeat) -> None:
        now = time.monotonic()
        if self.first_heartbeat is None:
            self.first_heartbeat = now
        self.heartbeat = msg.fields
        if msg.last_frame_age_s is not None:
            self.last_frame = now - msg.last_frame_age_s

    async def on_status(self, msg: Status) -> None:
        """Log changes only: a dead camera retries every few seconds and must not flood the journal."""
        if msg.connected:
            self.stream_seen.set()
            self.problem = ""
            self.log.info("stream_connected", camera=self.cam.name, width=msg.width, height=msg.height)
        else:
            problem = f"stream: {msg.detail}"
            if problem != self.problem:
                self.log.warning("stream_down", camera=self.cam.name, detail=msg.detail)
            self.problem = problem

    def frame_age(self, now: float) -> float:
        """Since the last frame; before the first one, since the worker first spoke (its start-up on a busy
        box is not the camera's fault), or since this camera started in the agent if it never did."""
        return now - (self.last_frame or self.first_heartbeat or self.started)

    def decide(self, now: float) -> bool | None:
        """Debounced state change: True/False when it flips, None when nothing changed."""
        age = self.frame_age(now)
        if age <= max(2.0, 2.0 / self.cam.detect_fps):
            if self.flowing_since is None:
                self.flowing_since = now
            if self.online is not True and now - self.flowing_since >= self.cfg.online_after_s:
                self.online = True
                return True
        else:
            self.flowing_since = None
            if self.online is not False and age > self.cfg.offline_after_s:
                self.online = False
                return False
        return None

    def transition(self, now: float) -> Event | None:
        """The event for a flip, if the COC is told: every offline, an online only after an offline."""
        change = self.decide(now)
        name = self.cam.name
        if change is True:
            self.ctx.log.info("camera_online", camera=name)
            was_offline, self.reported_offline = self.reported_offline, False
            return Event("camera_online", {"camera": name}) if was_offline else None
        if change is False:
            age = round(self.frame_age(now), 1)
            self.ctx.log.warning("camera_offline", camera=name, frame_age_s=age, problem=self.problem or None)
            self.reported_offline = True
            return Event("camera_offline", {"camera": name, "last_frame_age_s": age, "problem": self.problem},
                         severity="warning")
        return None
