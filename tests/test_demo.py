"""The demo is the agent's main job end to end: every family's simulated devices reach the COC."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support.agentproc import ROOT


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.mark.slow
@pytest.mark.agent
@pytest.mark.skipif(os.geteuid() != 0, reason="the demo's WAN links live in network namespaces (root)")
def test_demo_shows_every_family_at_the_coc() -> None:
    if not _port_free(18830):
        pytest.skip("port 18830 is taken (a demo is running)")
    # the demo stops as soon as every family has reached the COC; 150 s is a loaded machine's worst case
    res = subprocess.run([sys.executable, "-m", "scripts.demo.run", "--until-shown", "--seconds", "150",
                          "--no-browser"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=240)
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    for expected in ("COC <- BIRTH", "drivers=broadcast,cameras,console,host,network,sensors",
                     "EVENT     link_up", "TELEMETRY network", "EVENT     motion", "SNAPSHOT  demo_street/",
                     "EVENT     asrun", '"outcome": "played"', "EVENT     sensor_alarm", "TELEMETRY sensors",
                     "sim_broadcast: loudspeaker loa-xom-1 UNPLUGGED", "EVENT     speaker_down",
                     '"outcome": "unreachable"', "EVENT     speaker_up", "(a sound card with a clock",
                     "HEALTH    broadcast=ok cameras=ok console=ok host=ok network=ok sensors=ok",
                     "demo: web console at http://127.0.0.1:18880/  log in as canbo / demo-canbo-2026",
                     "demo: signboard at http://127.0.0.1:18890/b/", "signboard=ok",
                     "demo: every family reached the COC in", "OFFLINE", "demo: stopped everything it started"):
        assert expected in out, f"{expected!r} missing from the demo output:\n{out[-4000:]}"
