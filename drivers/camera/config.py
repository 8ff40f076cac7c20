"""The `cameras` section: one entry per camera plus how to capture, detect and report.

Imports only pydantic and the stdlib, so `check-config` stays cheap (no OpenCV here).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from agent.section import SecretFile, Section
from drivers.camera.plain import OBJECT_CLASSES, VEHICLE_CLASSES, in_window, score_for

__all__ = ["OBJECT_CLASSES", "VEHICLE_CLASSES"]  # the class names live in plain.py, for the worker too

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CAMERA_NAME = r"^[a-z0-9][a-z0-9_-]{0,47}$"


ObjectClass = Literal["person", "bicycle", "motorcycle", "car", "bus", "truck"]
Point = tuple[float, float]


def _check_points(points: list[Point], what: str, minimum: int) -> list[Point]:
    if len(points) < minimum:
        raise ValueError(f"{what} needs at least {minimum} points")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"{what}: point [{x}, {y}] is outside 0..1 (coordinates are fractions)")
    return points


def _check_rtsp(v: Optional[str]) -> Optional[str]:
    if v is None:
        return v
    if not v.startswith(("rtsp://", "rtsps://")):
        raise ValueError("rtsp_url must start with rtsp:// or rtsps://")
    if "@" in v.split("/", 3)[2]:
        raise ValueError("put credentials in username/password_file, not in rtsp_url")
    return v


class OnvifConfig(Section):
    """Where the camera's ONVIF device service answers; the stream URI is asked from it."""

    host: str = Field(description="camera address (IP or name) of its ONVIF device service")
    port: int = Field(80, ge=1, le=65535, description="ONVIF HTTP port")
    profile: Optional[str] = Field(
        None, description="profile token or name; default: the lowest-resolution profile (the substream)")
    timeout_s: float = Field(5.0, gt=0, le=60, description="each ONVIF request must answer within this")


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
    min_travel_pct: float = Field(8.0, ge=0, le=100, description="a moving blob must travel this far (% of the "
                                  "picture width) before a motion event starts; swaying branches and flags stay put")
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
        return [_check_points(poly, f"mask {i}", 3) for i, poly in enumerate(v)]


class DetectConfig(Section):
    """Object detection (people and vehicles), run only while something moves and at a limited rate."""

    enabled: bool = Field(True, description="false = motion events only")
    detector: Literal["yolo", "hog", "onnx"] = Field(
        "yolo", description="yolo: the installed YOLOv3-tiny (COCO; people and vehicles); hog: OpenCV's "
        "people-only HOG (no model file); onnx: your own YOLOv5/v8-style ONNX model")
    model_dir: Optional[Path] = Field(
        None, description="where `yolo` finds its installed model files; default: share/commune-agent/models "
        "in the agent's Python environment")
    model: Optional[Path] = Field(None, description="YOLO-style ONNX file (detector: onnx)")
    onnx_labels: list[str] = Field(
        default_factory=list, description="class names of the ONNX model in output order; empty = the 80 COCO names")
    input_size: int = Field(416, ge=160, le=1280, description="onnx, or yolo without the shared detector: network "
                            "input side in pixels (multiple of 32) for the whole frame; smaller is faster and misses "
                            "small objects (the shared detector's is cameras.detector.input_size)")
    region_size: int = Field(256, ge=0, le=1280, description="yolo without the shared detector: network input "
                             "side (multiple of 32) for a square "
                             "crop of the full-resolution frame around the moving regions (input_size instead when "
                             "objects would be smaller than in the whole frame); 0 = always the whole frame")
    classes: list[ObjectClass] = Field(
        default_factory=lambda: list(OBJECT_CLASSES), description="what to report; hog finds only person")
    min_score: float = Field(0.35, ge=0, le=10, description="network confidence (0..1) or HOG SVM weight to "
                             "accept a detection")
    min_scores: dict[ObjectClass, float] = Field(
        default_factory=dict, description="per-class min_score overrides, e.g. {person: 0.5}")
    zones: list[list[Point]] = Field(
        default_factory=list, description="polygons ([x, y] fractions) an object's foot point must be in to "
        "count; empty = the whole picture")
    interval_s: float = Field(0.5, ge=0.05, le=60, description="at most one detector call per camera this often")
    still_interval_s: float = Field(2.0, ge=0.1, le=600, description="detector period while nothing moves but "
                                    "objects are tracked in stop zones (vehicle_stopped)")
    confirmed_interval_s: float = Field(2.0, ge=0.05, le=600, description="detector period while every kind this "
                                        "camera reports (person, vehicle) has an event open on the ongoing motion "
                                        "and no counting line or stop zone needs tracks; <= interval_s = no cap")
    confirm_hits: int = Field(2, ge=1, le=10, description="detections needed within the last confirm_window calls")
    confirm_window: int = Field(3, ge=1, le=20, description="detector calls looked back on by confirm_hits")
    max_side: int = Field(640, ge=160, le=1920, description="motion regions are scaled down to this for HOG")

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[list[Point]]) -> list[list[Point]]:
        return [_check_points(z, f"detect zone {i}", 3) for i, z in enumerate(v)]

    @model_validator(mode="after")
    def _check(self) -> DetectConfig:
        if self.confirm_hits > self.confirm_window:
            raise ValueError("confirm_hits must be <= confirm_window")
        if self.detector == "onnx":
            if self.model is None:
                raise ValueError("detector onnx needs model: /path/to/model.onnx")
            if not self.model.is_file():
                raise ValueError(f"ONNX model file not found: {self.model}")
        if self.input_size % 32:
            raise ValueError("input_size must be a multiple of 32")
        if self.region_size % 32 or 0 < self.region_size < 128:
            raise ValueError("region_size must be 0 (always the whole frame) or a multiple of 32 from 128")
        if not self.classes:
            raise ValueError("classes must name at least one of " + ", ".join(OBJECT_CLASSES))
        return self

    def score_for(self, label: str) -> float:
        return score_for(self.min_scores, self.min_score, label)  # type: ignore[arg-type]


class CountLine(Section):
    """A counting line: each tracked object crossing it is counted once, per class and direction."""

    name: str = Field(pattern=CAMERA_NAME, description="short id used as the `line` tag of traffic_count")
    points: list[Point] = Field(description="the line's two ends [[x, y], [x, y]] as fractions of the picture")
    directions: tuple[str, str] = Field(
        ("in", "out"), description="names of the two directions: crossing from the left of first->second end "
        "to its right, and back")
    classes: list[ObjectClass] = Field(
        default_factory=lambda: list(OBJECT_CLASSES), description="classes counted on this line")

    @field_validator("points")
    @classmethod
    def _two(cls, v: list[Point]) -> list[Point]:
        _check_points(v, "counting line", 2)
        if len(v) != 2:
            raise ValueError("a counting line has exactly 2 points")
        if v[0] == v[1]:
            raise ValueError("a counting line needs two different points")
        return v


class StopZone(Section):
    """A black spot or no-parking area: a vehicle standing in it this long raises vehicle_stopped."""

    name: str = Field(pattern=CAMERA_NAME, description="short id reported in the event")
    polygon: list[Point] = Field(description="the zone, [x, y] fractions of the picture")
    stopped_after_s: float = Field(60.0, ge=1, le=86400, description="standing time that raises vehicle_stopped")
    still_pct: float = Field(3.0, gt=0, le=50, description="moving less than this (% of the picture width) "
                             "still counts as standing")
    classes: list[ObjectClass] = Field(
        default_factory=lambda: sorted(VEHICLE_CLASSES), description="classes watched in this zone")

    @field_validator("polygon")
    @classmethod
    def _poly(cls, v: list[Point]) -> list[Point]:
        return _check_points(v, "stop zone", 3)


class TrafficConfig(Section):
    """Traffic counts at a black spot: counting lines and stop zones over tracked detections."""

    lines: list[CountLine] = Field(default_factory=list, description="counting lines; empty = no counting")
    stop_zones: list[StopZone] = Field(default_factory=list, description="zones for vehicle_stopped events")
    count_interval_s: float = Field(300.0, ge=10, le=86400, description="traffic_count telemetry period")
    track_ttl_s: float = Field(2.0, gt=0, le=60, description="a track not seen for this long is dropped")


class ClipConfig(Section):
    """Event clips cut from the camera's own H.264/H.265 stream without re-encoding."""

    enabled: bool = Field(True, description="false = no video kept, snapshots only")
    pre_roll_s: float = Field(5.0, ge=0, le=60, description="video kept from before the event started")
    post_roll_s: float = Field(5.0, ge=0, le=60, description="video kept after the event ended")
    segment_s: float = Field(1.0, ge=0.5, le=10, description="ring segment length (cut at key frames, so a clip "
                             "starts up to one key-frame interval before the pre-roll)")
    max_clip_s: float = Field(120.0, ge=5, le=3600, description="a longer event's clip is closed at this length")
    rtsp_url: Optional[str] = Field(None, description="record this stream instead of the analysed one (e.g. the "
                                    "main stream); credentials as for the camera")

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp(cls, v: Optional[str]) -> Optional[str]:
        return _check_rtsp(v)


class ArmWindow(Section):
    """A weekly time window in the site's time zone during which events are reported."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS), description="weekdays the window starts on")
    start: dt.time = Field(dt.time(0, 0), description="local time the window opens")
    end: dt.time = Field(dt.time(23, 59, 59), description="local time it closes; before start = past midnight")

    def contains(self, now: dt.datetime) -> bool:
        """True if now (a local, aware or naive datetime) falls inside; end < start wraps midnight."""
        return in_window(self.days, self.start, self.end, now)


class SnapshotConfig(Section):
    """Event snapshots: size on a normal and on a metered link (the store is bounded by `storage`)."""

    width: int = Field(640, ge=160, le=3840, description="snapshots are downscaled to this width")
    quality: int = Field(80, ge=30, le=95, description="JPEG quality")
    metered_width: int = Field(320, ge=160, le=3840, description="person snapshots sent at once on a metered link")
    metered_quality: int = Field(60, ge=30, le=95, description="JPEG quality on a metered link")


class StorageConfig(Section):
    """Clips and snapshots of every camera share one byte budget and a max age; oldest go first."""

    budget_bytes: int = Field(2 * 1024**3, ge=1024 * 1024, description="clips + snapshots + the recording ring, "
                              "all cameras together")
    max_age_days: float = Field(30.0, gt=0, le=3650, description="older clips and snapshots are deleted")
    min_free_bytes: int = Field(500 * 1024**2, ge=0, description="free disk below this pauses recording "
                                "(event recording_paused) until space is back")
    check_every_s: float = Field(5.0, ge=0.2, le=600, description="how often the budget and the floor are checked")


class CameraConfig(Section):
    """One camera: plain RTSP URL or ONVIF, plus its detection tuning."""

    name: str = Field(pattern=CAMERA_NAME, description="short id used in topics, e.g. cong_ubnd")
    enabled: bool = Field(True, description="false = configured but not watched")
    rtsp_url: Optional[str] = Field(None, description="rtsp://host:554/path (credentials go in username/password_file)")
    onvif: Optional[OnvifConfig] = Field(None, description="ask the camera for its stream over ONVIF instead")
    username: Optional[str] = Field(None, description="camera account (a viewer is enough)")
    password_file: Optional[SecretFile] = Field(None, description="file holding that account's password")
    detect_fps: float = Field(5.0, gt=0, le=30, description="frames analysed per second")
    detect_width: int = Field(320, ge=160, le=1280, description="motion runs on a grey copy this wide")
    motion: MotionConfig = Field(MotionConfig(), description="motion gate tuning")
    detect: DetectConfig = Field(DetectConfig(), description="people/vehicle detector")
    traffic: TrafficConfig = Field(TrafficConfig(), description="counting lines and stop zones")
    clip: ClipConfig = Field(ClipConfig(), description="event video clips")
    armed: list[ArmWindow] = Field(default_factory=list, description="empty = always armed")
    snapshot: SnapshotConfig = Field(SnapshotConfig(), description="event snapshot sizes")
    update_every_s: float = Field(10.0, ge=1, le=3600, description="an ongoing event sends an update this often")
    max_event_s: float = Field(300.0, ge=10, le=86400, description="a longer event is ended and a new one started")

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp(cls, v: Optional[str]) -> Optional[str]:
        return _check_rtsp(v)

    @model_validator(mode="after")
    def _source(self) -> CameraConfig:
        if (self.rtsp_url is None) == (self.onvif is None):
            raise ValueError("give exactly one of rtsp_url or onvif")
        if self.password_file is not None and not self.username:
            raise ValueError("password_file needs username")
        return self

    def is_armed(self, now: dt.datetime) -> bool:
        return not self.armed or any(w.contains(now) for w in self.armed)


class DetectorServiceConfig(Section):
    """The one detector process every camera with `detect.detector: yolo` shares (one network in memory)."""

    shared: bool = Field(True, description="false = each camera worker loads its own YOLO networks (~250-450 MB "
                         "per camera, as before the shared service)")
    input_size: int = Field(320, ge=128, le=640, description="the service's single network input side (multiple "
                            "of 32); motion crops are at least this wide, wider motion is split into several crops; "
                            "256 costs ~35 % less CPU per crop and finds fewer people")
    batch_max: int = Field(3, ge=1, le=16, description="crops run through the network together when several "
                           "cameras wait; each step up plans more memory (~20 MB per crop at 320)")
    max_crops: int = Field(3, ge=1, le=8, description="crops one camera may send per call (wide or scattered motion)")
    shed_after_ms: float = Field(800, ge=50, le=10000, description="a request waiting this long is answered "
                                 "`shed` and its camera stretches its detector interval (up to 8×) until answers "
                                 "come back in time; lines and stop zones are served first and never shed (answered "
                                 "late, they slow down the same)")
    answer_timeout_s: float = Field(5.0, ge=0.2, le=30, description="a camera waiting longer for an answer "
                                    "takes the service for hung and uses HOG until it answers again (decoding "
                                    "never waits for it)")
    hung_after_s: float = Field(10.0, ge=2, le=300, description="no heartbeat from the service this long = "
                                "wedged: the family kills and restarts it")

    @field_validator("input_size")
    @classmethod
    def _multiple(cls, v: int) -> int:
        if v % 32:
            raise ValueError("input_size must be a multiple of 32")
        return v


class CamerasConfig(Section):
    """All cameras and the capture/supervision settings they share."""

    devices: list[CameraConfig] = Field(default_factory=list, description="the cameras")
    discovery_interfaces: list[str] = Field(default_factory=list, description="interfaces probed by "
                                            "`cameras discover`; empty = every interface with an IPv4 address")
    open_timeout_s: float = Field(5.0, ge=0.5, le=60, description="RTSP connect + describe must finish within this")
    read_timeout_s: float = Field(5.0, ge=0.5, le=60, description="a stream silent this long is reopened")
    reconnect_min_s: float = Field(0.5, gt=0, le=60, description="first retry after a lost stream")
    reconnect_max_s: float = Field(4.0, gt=0, le=600, description="retries double up to this")
    offline_after_s: float = Field(6.0, ge=1, le=600, description="no frame for this long = camera_offline")
    online_after_s: float = Field(2.0, ge=0, le=600, description="frames flowing this long = camera_online")
    health_interval_s: float = Field(30.0, ge=1, le=3600, description="telemetry period")
    clock_skew_max_s: float = Field(5.0, gt=0, le=3600, description="camera clock off by more = camera_clock_skew")
    clock_check_interval_s: float = Field(3600.0, ge=10, le=86400, description="how often ONVIF clocks are checked")
    storage: StorageConfig = Field(StorageConfig(), description="one bound for all clips and snapshots")
    detector: DetectorServiceConfig = Field(DetectorServiceConfig(), description="the shared detector service")

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
