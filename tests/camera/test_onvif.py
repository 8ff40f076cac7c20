"""ONVIF against ipycam (a real ONVIF device) inside a private network namespace made for the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ipycam")
pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
SESSION = Path(__file__).with_name("onvif_session.py")


def run_session(skew_s: float) -> dict:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private network namespace")
    # the namespace is private to this command: ipycam's multicast Hello never leaves it
    cmd = ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
           sys.executable, str(SESSION), "8080", str(skew_s)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_discovery_profiles_stream_uri_clock_skew_and_wrong_password() -> None:
    out = run_session(skew_s=30)
    [found] = out["found"]
    assert found["xaddrs"] == ["http://127.0.0.1:8080/onvif/device_service"]
    assert found["name"] == "cong-ubnd" and found["interface"] == "lo" and found["address"].startswith("urn:uuid:")
    assert out["probe_s"] < 2
    assert [d["xaddrs"] for d in out["cli_discover"]] == [found["xaddrs"]]
    assert out["info"]["Manufacturer"] == "PythonCam"
    assert {p["token"] for p in out["profiles"]} == {"Profile_Main", "Profile_Sub"}
    assert out["chosen"] == "Profile_Sub"  # the substream is what detection wants
    assert out["stream_uri"] == "rtsp://127.0.0.1:8554/video_sub"
    assert out["main_uri"] == "rtsp://127.0.0.1:8554/video_main"
    assert out["snapshot_uri"].startswith("http://127.0.0.1:8080/")
    assert 27 <= out["skew_s"] <= 33  # the device clock runs 30 s ahead, yet auth works (time-adjusted token)
    assert "rejected user 'admin': wrong username or password" in out["wrong_password"]
    drv = out["driver"]
    assert drv["url"] == "rtsp://admin:s3cret@127.0.0.1:8554/video_sub"
    [(kind, data)] = drv["events"]
    assert kind == "camera_clock_skew" and data["camera"] == "gate" and 27 <= data["skew_s"] <= 33
    assert drv["readings"][0][0] == "clock_skew_s"
