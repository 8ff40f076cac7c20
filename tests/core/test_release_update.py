"""Self-update end to end: a real box installed as releases, run by the unit's own ExecStartPre/ExecStart lines
under systemd's restart rules, fetching bundles over its MQTT connection inside the per-site ACL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.releasebox import Keys, ReleaseBox
from tests.support.wait import wait_until


@pytest.fixture
def box(tmp_path: Path, release_base: Path, release_keys: Keys) -> Iterator[Any]:
    made: list[ReleaseBox] = []

    def make(**kw: Any) -> ReleaseBox:
        made.append(ReleaseBox(tmp_path / f"box{len(made)}", release_base, release_keys,
                               f"s{os.getpid()}x{len(made)}", **kw))
        return made[-1]

    yield make
    for b in made:
        b.close()


def test_a_good_release_is_installed_started_and_committed(box: Any) -> None:
    b = box().start()
    assert b.births()[-1]["release"] == "base"
    manifest, sig, bundle = b.bundle("next", "r-next")
    assert manifest["included"] == [manifest["agent_wheel"]]  # only what differs from the running release
    b.publish(manifest, bundle)
    result = b.offer(manifest, sig, "ro1:s")
    assert result["ok"] is True and result["state"] == "downloading", result
    done = b.change("ro1:s", "committed", timeout=90)
    assert done["from"] == {"release": "base"} and done["to"] == {"release": "r-next"}
    birth = b.wait_online("r-next")
    assert birth["agent_version"].endswith("+next")
    wait_until(lambda: b.events("ro1:s"), 20, what="committed event")
    assert [e["outcome"] for e in b.events("ro1:s")] == ["committed"]
    # the outcome is marked reported in the state file once its event is stored, which may be after the COC has it
    state = wait_until(lambda: (s := b.state())["last"]["reported"] and s, 10, what="the outcome marked reported")
    assert state["good"] == "r-next" and state["trial"] is None
    assert os.readlink(b.releases / "good") == os.readlink(b.releases / "current") == "r-next"
    assert sorted(p.name for p in b.releases.iterdir() if not p.name.startswith(".")) == [
        "base", "current", "good", "r-next", "state.json"]
    assert not [p for p in b.releases.iterdir() if p.name.startswith(".tmp-")]


def test_a_release_that_raises_at_import_is_rolled_back_and_the_coc_told(box: Any) -> None:
    b = box().start()
    manifest, sig, bundle = b.bundle("broken", "r-broken")
    b.publish(manifest, bundle)
    assert b.offer(manifest, sig, "ro2:s")["ok"] is True
    back = b.change("ro2:s", "rolled_back", timeout=90)
    assert "3 starts without passing the health gate" in back["reason"], back
    b.wait_online("base")
    wait_until(lambda: b.events("ro2:s"), 20, what="rolled_back event")
    assert [e["outcome"] for e in b.events("ro2:s")] == ["rolled_back"]
    state = b.state()
    assert state["good"] == "base" and state["trial"] is None
    assert os.readlink(b.releases / "current") == "base"
    assert [s.phase for s in b.unit.starts[1:4]] == ["pre:1"] * 3  # its check-config failed three times


def test_a_bad_signature_or_a_tampered_bundle_is_refused_before_install(box: Any) -> None:
    b = box().start()
    manifest, sig, bundle = b.bundle("next", "r-evil")
    forged = dict(manifest, version="9.9.9")
    refused = b.offer(forged, sig, "ro3:s")
    assert refused["ok"] is False and "signature" in refused["error"]
    assert b.change("ro3:s", "refused")
    data = bytearray(bundle.read_bytes())
    data[600] ^= 0xFF  # one byte of the agent wheel, inside the first chunk
    b.publish(manifest, bundle, chunks=[bytes(data[i:i + 65536]) for i in range(0, len(data), 65536)])
    assert b.offer(manifest, sig, "ro4:s")["ok"] is True
    gone = b.change("ro4:s", "refused")
    assert "chunk 0" in gone["reason"], gone
    assert sorted(p.name for p in b.releases.iterdir()) == [".lock", "base", "current", "good", "state.json"]
    assert [e["outcome"] for e in b.events("ro4:s")] == ["refused"]
    assert len(b.unit.starts) == 1  # nothing restarted
    assert json.loads((b.releases / "state.json").read_text())["trial"] is None


def test_a_metered_link_defers_the_download_and_urgent_does_not(box: Any) -> None:
    b = box()
    proc = b.start_on_link("wan2-4g", metered=True)
    wait_until(lambda: json.loads((b.data / "status.json").read_text())["link"]["metered"], 20, what="metered")
    manifest, sig, bundle = b.bundle("next", "r-next")
    b.publish(manifest, bundle)
    assert b.offer(manifest, sig, "ro5:s")["state"] == "deferred"
    assert b.change("ro5:s", "deferred")["reason"] == "waiting for an unmetered link"
    part = b.data / "fleet" / "incoming" / "r-next.part"
    assert not part.exists() or part.stat().st_size == 0  # nothing fetched over the metered link
    b.set_link("wan1", metered=False)
    assert b.change("ro5:s", "restarting", timeout=60)["to"] == {"release": "r-next"}
    assert proc.wait(30) == 75  # to be started into the new release by the unit
    assert b.state()["trial"]["release"] == "r-next"

    urgent = box()
    proc = urgent.start_on_link("wan2-4g", metered=True)
    wait_until(lambda: json.loads((urgent.data / "status.json").read_text())["link"]["metered"], 20, what="metered")
    manifest, sig, bundle = urgent.bundle("next", "r-next")
    urgent.publish(manifest, bundle)
    assert urgent.offer(manifest, sig, "ro6:s", urgent=True)["state"] == "downloading"
    urgent.change("ro6:s", "restarting", timeout=60)
    assert proc.wait(30) == 75
