"""ONVIF (onvif-zeep) wrapped so callers get device info, profiles, URIs and clock skew, or a clear error.

Blocking: call from a thread. The token's timestamp is shifted by the camera's clock offset
(adjust_time), so a camera whose clock drifted still accepts us and we can report the skew.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any


class OnvifError(Exception):
    """The camera did not answer ONVIF as expected (unreachable, fault, bad reply)."""


class OnvifAuthError(OnvifError):
    """The camera rejected our username/password (WS-UsernameToken)."""


@dataclass(frozen=True)
class Profile:
    token: str
    name: str
    width: int
    height: int
    encoding: str
    fps: float

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _is_auth_failure(text: str) -> bool:
    t = text.lower().replace(" ", "")
    return any(k in t for k in ("notauthorized", "unauthorized", "401", "authorityfailure", "failedauthentication"))


def _wsdl_dir() -> str:
    import onvif

    return os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), "wsdl")


def with_credentials(uri: str, user: str | None, password: str | None) -> str:
    """rtsp://host/path → rtsp://user:pass@host/path (URL-quoted); unchanged without a user."""
    if not user:
        return uri
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    cred = urllib.parse.quote(user, safe="")
    if password:
        cred += ":" + urllib.parse.quote(password, safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{cred}@{host}"))


def redact(uri: str) -> str:
    """The URI with any password replaced, for logs."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    cred, host = parts.netloc.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class OnvifClient:
    """One connection to a camera's ONVIF device and media services."""

    def __init__(self, host: str, port: int, user: str | None, password: str | None, timeout_s: float = 5.0) -> None:
        from onvif import ONVIFCamera, ONVIFError
        from zeep.transports import Transport

        self.host, self.port, self.user = host, port, user or ""
        try:
            transport = Transport(timeout=timeout_s, operation_timeout=timeout_s)
            self.cam = ONVIFCamera(host, port, user or "", password or "", _wsdl_dir(), no_cache=True,
                                   adjust_time=True, transport=transport)
            self.media = self.cam.create_media_service()
        except ONVIFError as exc:
            raise self._classify(exc) from None
        except OSError as exc:
            raise OnvifError(f"{host}:{port}: {exc}") from None

    def _classify(self, exc: Exception) -> OnvifError:
        text = str(exc)
        if _is_auth_failure(text):
            who = f"user {self.user!r}" if self.user else "no credentials"
            return OnvifAuthError(f"{self.host}:{self.port} rejected {who}: wrong username or password "
                                  "(or the account lacks ONVIF rights)")
        return OnvifError(f"{self.host}:{self.port}: {text.strip()[:300]}")

    def _call(self, fn: Any, *args: Any) -> Any:
        from onvif import ONVIFError

        try:
            return fn(*args)
        except ONVIFError as exc:
            raise self._classify(exc) from None
        except OSError as exc:
            raise OnvifError(f"{self.host}:{self.port}: {exc}") from None

    def clock_skew_s(self) -> float:
        """Camera clock minus ours, in seconds (positive: the camera is ahead)."""
        import datetime as dt

        reply = self._call(self.cam.devicemgmt.GetSystemDateAndTime)
        u = reply.UTCDateTime
        cam = dt.datetime(u.Date.Year, u.Date.Month, u.Date.Day, u.Time.Hour, u.Time.Minute, u.Time.Second,
                          tzinfo=dt.UTC)
        return (cam - dt.datetime.now(dt.UTC)).total_seconds()

    def device_info(self) -> dict[str, str]:
        info = self._call(self.cam.devicemgmt.GetDeviceInformation)
        return {k: str(getattr(info, k, "") or "") for k in
                ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber", "HardwareId")}

    def profiles(self) -> list[Profile]:
        out = []
        for p in self._call(self.media.GetProfiles):
            enc = getattr(p, "VideoEncoderConfiguration", None)
            res = getattr(enc, "Resolution", None)
            rate = getattr(enc, "RateControl", None)
            out.append(Profile(token=str(p.token), name=str(getattr(p, "Name", "") or ""),
                               width=int(getattr(res, "Width", 0) or 0), height=int(getattr(res, "Height", 0) or 0),
                               encoding=str(getattr(enc, "Encoding", "") or ""),
                               fps=float(getattr(rate, "FrameRateLimit", 0) or 0)))
        return out

    def stream_uri(self, token: str) -> str:
        req = {"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": token}
        return str(self._call(self.media.GetStreamUri, req).Uri)

    def snapshot_uri(self, token: str) -> str:
        return str(self._call(self.media.GetSnapshotUri, {"ProfileToken": token}).Uri)


def choose_profile(profiles: list[Profile], wanted: str | None) -> Profile:
    """The named/token profile, else the smallest H.264 one: the substream is what detection needs."""
    if not profiles:
        raise OnvifError("camera reports no media profiles")
    if wanted:
        for p in profiles:
            if wanted in (p.token, p.name):
                return p
        raise OnvifError(f"no profile {wanted!r}; camera has: {', '.join(p.token for p in profiles)}")
    h264 = [p for p in profiles if p.encoding.upper() in ("H264", "H265")] or profiles
    return min(h264, key=lambda p: p.pixels or 1 << 30)
