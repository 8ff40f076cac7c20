"""The cameras section: its examples validate, and mistakes are refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from drivers.camera.config import CameraConfig, CamerasConfig

HERE = Path(__file__).resolve().parents[2] / "drivers" / "camera"


def test_demo_yaml_validates() -> None:
    cfg = CamerasConfig.model_validate(yaml.safe_load((HERE / "demo.yaml").read_text())["cameras"])
    assert cfg.devices[0].rtsp_url == "rtsp://127.0.0.1:18554/cam"


def test_example_yaml_validates_with_its_secret_files(tmp_path: Path) -> None:
    text = (HERE / "example.yaml").read_text()
    for name in ("cam-cong-ubnd.pass", "cam-cho-xa.pass"):
        (tmp_path / name).write_text("pw\n")
        text = text.replace(f"/etc/commune-agent/secrets/{name}", str(tmp_path / name))
    cfg = CamerasConfig.model_validate(yaml.safe_load(text)["cameras"])
    assert [c.name for c in cfg.devices] == ["cong_ubnd", "cho_xa"]
    assert cfg.devices[0].onvif is not None and len(cfg.devices[0].motion.masks) == 2
    assert cfg.devices[1].traffic.lines and cfg.devices[1].traffic.stop_zones and cfg.storage.budget_bytes > 0


def test_every_config_field_is_described() -> None:
    from pydantic import BaseModel

    seen: set[type] = set()
    missing: list[str] = []

    def walk(model: type[BaseModel]) -> None:
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            for t in (*getattr(field.annotation, "__args__", ()), field.annotation):
                for inner in (*getattr(t, "__args__", ()), t):
                    if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in seen:
                        walk(inner)

    walk(CamerasConfig)
    assert missing == []


@pytest.mark.parametrize("cam, reason", [
    ({"name": "a"}, "exactly one of rtsp_url or onvif"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "onvif": {"host": "x"}}, "exactly one of rtsp_url or onvif"),
    ({"name": "a", "rtsp_url": "http://x/"}, "must start with rtsp://"),
    ({"name": "a", "rtsp_url": "rtsp://u:p@x/"}, "credentials"),
    ({"name": "A b", "rtsp_url": "rtsp://x/"}, "pattern"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "motion": {"blur": 4}}, "odd"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "motion": {"masks": [[[0, 0], [2, 0], [1, 1]]]}}, "outside 0..1"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "detect": {"detector": "onnx"}}, "needs model"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "detect": {"confirm_hits": 4, "confirm_window": 3}}, "confirm_hits"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "detect": {"classes": ["tractor"]}}, "literal_error|Input should be"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "detect": {"classes": []}}, "at least one"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "traffic": {"lines": [{"name": "l", "points": [[0, 0], [1, 1], [1, 0]]}]}},
     "exactly 2 points"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "traffic": {"lines": [{"name": "l", "points": [[0.5, 0.5], [0.5, 0.5]]}]}},
     "two different points"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "traffic": {"stop_zones": [{"name": "z", "polygon": [[0, 0], [1, 1]]}]}},
     "at least 3 points"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "clip": {"rtsp_url": "rtsp://u:p@x/"}}, "credentials"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "person": {}}, "Extra inputs"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "detect_fps": 0}, "greater than 0"),
    ({"name": "a", "rtsp_url": "rtsp://x/", "password": "x"}, "Extra inputs"),
])
def test_bad_camera_is_refused(cam: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        CameraConfig.model_validate(cam)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate camera name"):
        CamerasConfig.model_validate({"devices": [{"name": "a", "rtsp_url": "rtsp://x/"},
                                                  {"name": "a", "rtsp_url": "rtsp://y/"}]})


def test_the_worker_reads_its_camera_without_pydantic_by_the_same_rules(tmp_path: Path) -> None:
    """The worker gets the agent's dump as read-only views: same values, same arming and scores, no pydantic."""
    import datetime as dt
    import subprocess
    import sys

    from drivers.camera.worker import WorkerSpec

    cam = CameraConfig.model_validate({
        "name": "gate", "rtsp_url": "rtsp://x/", "armed": [{"days": ["mon", "fri"], "start": "22:00", "end": "06:00"},
                                                          {"days": ["sat"], "start": "08:00", "end": "12:30"}],
        "detect": {"min_scores": {"person": 0.6}, "model_dir": str(tmp_path)},
        "traffic": {"lines": [{"name": "mid", "points": [[0.5, 0], [0.5, 1]], "directions": ["nam", "bac"]}]}})
    text = WorkerSpec(cam, "rtsp://x/", "UTC", 5, 5, 0.5, 4).to_json()
    view = WorkerSpec.from_json(text).camera
    week = [dt.datetime(2026, 12, 7) + dt.timedelta(minutes=30 * i) for i in range(7 * 48)]
    assert [view.is_armed(t) for t in week] == [cam.is_armed(t) for t in week]
    assert {c: view.detect.score_for(c) for c in cam.detect.classes} == \
        {c: cam.detect.score_for(c) for c in cam.detect.classes}
    assert view.detect.model_dir == cam.detect.model_dir and view.traffic.lines[0].directions == ["nam", "bac"]
    with pytest.raises(AttributeError):
        view.detect_fps = 1  # type: ignore[misc]
    probe = ("import sys; import drivers.camera.worker as w; spec = w.WorkerSpec.from_json(sys.stdin.read()); "
             "import drivers.camera.analyzer, drivers.camera.shared_detector, drivers.camera.capture; "
             "print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], input=text, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"  # ~16 MB a worker does not spend
