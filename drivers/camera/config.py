"""The `cameras` section: one entry per camera plus how to capture, detect and report.

Imports only pydantic and the stdlib, so `check-config` stays cheap (no OpenCV here).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from agent.section import SecretFile, Section

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CAMERA_NAME = r"^[a-z0-9][a-z0-9_-]{0,47}$"


class OnvifConfig(Section):
    """Where the camera's ONVIF device service answers; the stream URI is asked from it."""

    host: str
    port: int = Field(80, ge=1, le=65535)
    profile: Optional[str] = Field(
        None, description="profile token or name; default: the lowest-resolution profile (the substream)")
    timeout_s: float = Field(5.0, gt=0, le=60)


class MotionConfig(Section):
    """Frame-difference motion on a small grey frame; the cheap gate before anything else."""

    threshold: int = Field(25, ge=5, le=200, description="grey-level change that counts; lower = more sensitive")
    min_area_pct: float = Field(0.2, gt=0, le=50, description="smallest moving blob, percent of the frame")
    blur: int = Field(5, ge=1, le=21, description="Gaussian blur kernel (odd), smooths sensor noise and rain")
    learn_rate: float = Field(0.05, gt=0, le=1, description="background running-average weight per analysed frame")
    brightness_jump: float = Field(12.0, gt=0, le=255, description="mean grey-level jump that means 'lights changed'")
    max_changed_pct: float = Field(40.0, gt=0, le=100, description="more of the frame changed than this = lights, "
                                   "recalibrate instead of firing")
    frames_to_start: int = Field(2, ge=1, le=20, description="consecutive analysed frames with motion to start")
    end_after_s: float = Field(4.0, gt=0, le=300, description="quiet time that ends a motion event")
    masks: list[list[tuple[float, float]]] = Field(
        default_factory=list, description="polygons ignored by motion, [x, y] in 0..1 of width/height")

    @field_validator("blur")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("blur must be odd (1, 3, 5, ...)")
        return v

    @field_validator("masks")
    @classmethod
    def _polygons(cls, v: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        for i, poly in enumerate(v):
            if len(poly) < 3:
                raise ValueError(f"mask {i} needs at least 3 points")
            for x, y in poly:
                if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    raise ValueError(f"mask {i}: point [{x}, {y}] is outside 0..1 (coordinates are fractions)")
        return v


class PersonConfig(Section):
    """Person detection, run only on motion regions and at a limited rate."""

    enabled: bool = True
    detector: Literal["hog", "onnx"] = "hog"
    model: Optional[Path] = Field(None, description="YOLO-style ONNX file (detector: onnx)")
    input_size: int = Field(640, ge=160, le=1280, description="ONNX input side in pixels (multiple of 32)")
    class_id: int = Field(0, ge=0, description="the 'person' class in the ONNX model (0 for COCO)")
    min_score: float = Field(0.4, ge=0, le=10, description="HOG SVM weight / ONNX confidence to accept a detection")
    interval_s: float = Field(0.5, ge=0.05, le=60, description="at most one detector call per camera this often")
    confirm_hits: int = Field(2, ge=1, le=10, description="detections needed within the last confirm_window calls")
    confirm_window: int = Field(3, ge=1, le=20)
    max_side: int = Field(640, ge=160, le=1920, description="motion regions are scaled down to this for HOG")

    @model_validator(mode="after")
    def _check(self) -> PersonConfig:
        if self.confirm_hits > self.confirm_window:
            raise ValueError("confirm_hits must be <= confirm_window")
        if self.detector == "onnx":
            if self.model is None:
                raise ValueError("detector onnx needs model: /path/to/model.onnx")
            if not self.model.is_file():
                raise ValueError(f"ONNX model file not found: {self.model}")
        if self.input_size % 32:
            raise ValueError("input_size must be a multiple of 32")
        return self


class ArmWindow(Section):
    """A weekly time window in the site's time zone during which events are reported."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    start: dt.time = dt.time(0, 0)
    end: dt.time = dt.time(23, 59, 59)

    def contains(self, now: dt.datetime) -> bool:
        """True if now (a local, aware or naive datetime) falls inside; end < start wraps midnight."""
        t = now.time().replace(tzinfo=None)
        day = DAYS[now.weekday()]
        if self.start <= self.end:
            return day in self.days and self.start <= t <= self.end
        if t >= self.start:
            return day in self.days
        yesterday = DAYS[(now.weekday() - 1) % 7]
        return yesterday in self.days and t <= self.end


class SnapshotConfig(Section):
    """Event snapshots: size on a normal and on a metered link, and the local store bound."""

    width: int = Field(640, ge=160, le=3840)
    quality: int = Field(80, ge=30, le=95)
    metered_width: int = Field(320, ge=160, le=3840, description="person snapshots sent at once on a metered link")
    metered_quality: int = Field(60, ge=30, le=95)
    store_bytes: int = Field(50 * 1024 * 1024, ge=1024 * 1024, description="local snapshot store bound per camera")


class CameraConfig(Section):
    """One camera: plain RTSP URL or ONVIF, plus its detection tuning."""

    name: str = Field(pattern=CAMERA_NAME, description="short id used in topics, e.g. cong_ubnd")
    enabled: bool = True
    rtsp_url: Optional[str] = Field(None, description="rtsp://host:554/path (credentials go in username/password_file)")
    onvif: Optional[OnvifConfig] = None
    username: Optional[str] = None
    password_file: Optional[SecretFile] = None
    detect_fps: float = Field(5.0, gt=0, le=30)
    detect_width: int = Field(320, ge=160, le=1280)
    motion: MotionConfig = MotionConfig()
    person: PersonConfig = PersonConfig()
    armed: list[ArmWindow] = Field(default_factory=list, description="empty = always armed")
    snapshot: SnapshotConfig = SnapshotConfig()
    update_every_s: float = Field(10.0, ge=1, le=3600, description="an ongoing event sends an update this often")
    max_event_s: float = Field(300.0, ge=10, le=86400, description="a longer event is ended and a new one started")

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        if not v.startswith(("rtsp://", "rtsps://")):
            raise ValueError("rtsp_url must start with rtsp:// or rtsps://")
        if "@" in v.split("/", 3)[2]:
            raise ValueError("put credentials in username/password_file, not in rtsp_url")
        return v

    @model_validator(mode="after")
    def _source(self) -> CameraConfig:
        if (self.rtsp_url is None) == (self.onvif is None):
            raise ValueError("give exactly one of rtsp_url or onvif")
        if self.password_file is not None and not self.username:
            raise ValueError("password_file needs username")
        return self

    def is_armed(self, now: dt.datetime) -> bool:
        return not self.armed or any(w.contains(now) for w in self.armed)


class CamerasConfig(Section):
    """All cameras and the capture/supervision settings they share."""

    devices: list[CameraConfig] = Field(default_factory=list)
    discovery_interfaces: list[str] = Field(default_factory=list, description="interfaces probed by "
                                            "`cameras discover`; empty = every interface with an IPv4 address")
    open_timeout_s: float = Field(5.0, ge=0.5, le=60)
    read_timeout_s: float = Field(5.0, ge=0.5, le=60)
    reconnect_min_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(4.0, gt=0, le=600)
    offline_after_s: float = Field(6.0, ge=1, le=600, description="no frame for this long = camera_offline")
    online_after_s: float = Field(2.0, ge=0, le=600, description="frames flowing this long = camera_online")
    health_interval_s: float = Field(30.0, ge=1, le=3600, description="telemetry period")
    clock_skew_max_s: float = Field(5.0, gt=0, le=3600)
    clock_check_interval_s: float = Field(3600.0, ge=10, le=86400)

    @model_validator(mode="after")
    def _check(self) -> CamerasConfig:
        names = [c.name for c in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate camera name(s): {', '.join(dupes)}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def camera(self, name: str) -> CameraConfig | None:
        return next((c for c in self.devices if c.name == name), None)
