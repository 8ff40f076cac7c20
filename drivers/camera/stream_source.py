"""Where a camera's stream comes from: its RTSP URL with credentials, or asked over ONVIF; and the camera's clock."""

from __future__ import annotations

import asyncio

from agent.backoff import Backoff
from agent.driver import Context, Event
from agent.logs import KvLogger
from agent.section import read_secret
from drivers.camera.config import CameraConfig, CamerasConfig
from drivers.camera.online import OnlineState
from drivers.camera.onvif_client import (
    OnvifAuthError,
    OnvifClient,
    OnvifError,
    choose_profile,
    redact,
    with_credentials,
)


class StreamSource:
    """Resolves the stream URLs; ONVIF failures become the camera's problem text, a skewed clock an event."""

    def __init__(self, cam: CameraConfig, cfg: CamerasConfig, ctx: Context, log: KvLogger,
                 liveness: OnlineState) -> None:
        self.cam = cam
        self.cfg = cfg
        self.ctx = ctx
        self.log = log
        self.liveness = liveness
        self.clock_skew_s: float | None = None
        self.skew_reported = False

    def _password(self) -> str | None:
        return read_secret(self.cam.password_file)

    def _onvif_resolve(self) -> tuple[str, float]:
        assert self.cam.onvif is not None
        o = self.cam.onvif
        client = OnvifClient(o.host, o.port, self.cam.username, self._password(), o.timeout_s)
        profile = choose_profile(client.profiles(), o.profile)
        uri = client.stream_uri(profile.token)
        skew = client.clock_skew_s()
        return uri, skew

    async def resolve_url(self) -> str:
        """The RTSP URL with credentials; for ONVIF cameras ask the camera, retrying with backoff."""
        if self.cam.rtsp_url:
            return with_credentials(self.cam.rtsp_url, self.cam.username, self._password())
        backoff = Backoff(self.cfg.reconnect_min_s, max(30.0, self.cfg.reconnect_max_s), jitter=0.2)
        while True:
            try:
                uri, skew = await asyncio.to_thread(self._onvif_resolve)
            except OnvifAuthError as exc:
                self.liveness.problem = str(exc)
                self.log.error("onvif_auth_failed", camera=self.cam.name, error=str(exc))
                self.ctx.count("onvif_auth_failed")
                await asyncio.sleep(max(60.0, backoff.next()))
                continue
            except OnvifError as exc:
                self.liveness.problem = str(exc)
                self.log.warning("onvif_failed", camera=self.cam.name, error=str(exc))
                await asyncio.sleep(backoff.next())
                continue
            await self.note_clock_skew(skew)
            self.log.info("onvif_stream", camera=self.cam.name, uri=redact(uri))
            return with_credentials(uri, self.cam.username, self._password())

    def clip_url(self, url: str) -> str:
        """What the clip ring records: `clip.rtsp_url` (e.g. the main stream) if set, else the analysed stream."""
        if self.cam.clip.rtsp_url:
            return with_credentials(self.cam.clip.rtsp_url, self.cam.username, self._password())
        return url

    async def note_clock_skew(self, skew: float) -> None:
        """Telemetry always; an event when it crosses the limit (ONVIF auth fails on a skewed clock)."""
        self.clock_skew_s = round(skew, 1)
        too_far = abs(skew) > self.cfg.clock_skew_max_s
        if too_far and not self.skew_reported:
            self.skew_reported = True
            self.log.warning("camera_clock_skew", camera=self.cam.name, skew_s=skew)
            await self.ctx.emit(Event("camera_clock_skew", {"camera": self.cam.name, "skew_s": self.clock_skew_s,
                                                             "max_s": self.cfg.clock_skew_max_s}, severity="warning"))
        elif not too_far:
            self.skew_reported = False

    async def check_clock(self) -> None:
        """The periodic clock check of an ONVIF camera; a camera that does not answer is only logged."""
        if self.cam.onvif is None:
            return
        o = self.cam.onvif

        def ask() -> float:
            return OnvifClient(o.host, o.port, self.cam.username, self._password(), o.timeout_s).clock_skew_s()

        try:
            await self.note_clock_skew(await asyncio.to_thread(ask))
        except OnvifError as exc:
            self.log.warning("onvif_clock_check_failed", camera=self.cam.name, error=str(exc))
