"""Staged rollouts against real agents on a real broker: a failing canary halts the rollout before any other site
gets the change; a rollout whose CLI is killed is resumed and every site gets the change exactly once."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.fleet.lab import PREFIX, Desk
from tests.support.agentproc import AgentProcess
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

SITES = ("s1", "s2", "s3")


@pytest.fixture
def fleet(tmp_path: Path, broker: Broker) -> Iterator[tuple[Desk, Recorder]]:
    """Three real agents (s1 the canary, then one batch of two) and a recorder of what the COC sends them."""
    desk = Desk(tmp_path, broker, canaries=1, batch=2)
    rec = Recorder(broker.port, topics=(f"{PREFIX}/+/status", f"{PREFIX}/+/cmd/config_apply")).start()
    agents: list[AgentProcess] = [desk.agent(s).start() for s in SITES]
    try:
        wait_until(lambda: {m.topic.split("/")[2] for m in rec.on("/status") if m.json().get("online")}
                   >= set(SITES), 30, what="births of every site")
        yield desk, rec
    finally:
        for a in agents:
            a.stop()
        rec.stop()


def _patch(tmp: Path, intervals: dict[str, Any]) -> list[str]:
    (tmp / "patch.yaml").write_text("host:\n  interval_s: ${site.interval}\n")
    (tmp / "values.yaml").write_text(json.dumps({s: {"interval": v} for s, v in intervals.items()}))
    return ["--patch", str(tmp / "patch.yaml"), "--values", str(tmp / "values.yaml"), "--sites", ",".join(SITES)]


def _sent_to(rec: Recorder) -> list[str]:
    return [m.topic.split("/")[2] for m in rec.on("/cmd/config_apply")]


def test_a_failing_canary_halts_the_rollout_before_any_other_site_gets_it(tmp_path: Path, fleet: Any,
                                                                          capsys: Any) -> None:
    desk, rec = fleet
    code, out, _ = desk.run(capsys, "config", "push", *_patch(tmp_path, {"s1": 0, "s2": 30, "s3": 30}))
    assert code == 1
    assert "FAILED" in out and "config rejected" in out and "halted" in out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert _sent_to(rec) == ["s1"]  # the batch never got it
    (state,) = desk.rollouts()
    assert state["state"] == "halted"
    assert {s: p["state"] for s, p in state["progress"].items()} == {"s1": "failed", "s2": "pending",
                                                                     "s3": "pending"}
    status = desk.json(capsys, "rollout", "status", state["id"])
    assert (status["failed"], status["not_sent"]) == (1, 2)


def test_a_killed_rollout_resumes_and_every_site_gets_the_change_once(tmp_path: Path, fleet: Any,
                                                                      capsys: Any) -> None:
    desk, rec = fleet
    cli = desk.child("config", "push", *_patch(tmp_path, {"s1": 31, "s2": 32, "s3": 33}), log=tmp_path / "cli.log")
    try:
        # killed while it waits on the canary's health gate (it holds for 2 s before committing)
        wait_until(lambda: any(r["progress"]["s1"]["state"] == "sent" for r in desk.rollouts()), 20,
                   what="the canary sent")
    finally:
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait()
    (state,) = desk.rollouts()
    assert state["state"] == "running" and state["progress"]["s2"]["state"] == "pending"

    code, out, err = desk.run(capsys, "rollout", "resume", state["id"])
    assert code == 0, out + err
    assert sorted(_sent_to(rec)) == list(SITES)  # once each: the canary was waited on, not sent again
    assert "3 committed, 0 failed" in out

    rows = {r["site"]: r for r in desk.json(capsys, "list")}
    for site in SITES:
        assert rows[site]["online"] and rows[site]["change"]["state"] == "committed"
        assert rows[site]["change"]["change_id"] == f"{state['id']}:{site}"
        assert rows[site]["config_version"]["n"] >= 2
    code, out, _ = desk.run(capsys, "list")
    assert code == 0 and all(len(line) <= 80 for line in out.splitlines()) and "3 sites, 3 online" in out
    code, out, _ = desk.run(capsys, "show", "s2")
    assert code == 0 and "committed" in out and all(len(line) <= 80 for line in out.splitlines())
    assert desk.run(capsys, "rollout", "resume", state["id"])[0] == 1  # done: nothing to resume


def test_a_release_push_is_signed_as_the_boxes_expect_and_halts_at_a_refusing_canary(tmp_path: Path, fleet: Any,
                                                                                     capsys: Any) -> None:
    """Boxes not installed as releases refuse the update in their handler, past the signature check: the
    canary's refusal halts the rollout, and the batch never gets the offer."""
    desk, rec = fleet
    offers = Recorder(desk.broker.port, topics=(f"{PREFIX}/+/cmd/update",)).start()
    try:
        wheels = tmp_path / "wheels"
        wheels.mkdir()
        (wheels / "commune_agent-0.9.0-py3-none-any.whl").write_bytes(b"w" * 5000)
        built = desk.json(capsys, "release", "build", "--wheels", str(wheels), "--out", str(tmp_path / "out"),
                          "--chunk-bytes", "2048", "--release-id", "r9")
        desk.json(capsys, "release", "publish", built["dir"])
        code, out, _ = desk.run(capsys, "release", "push", "r9", "--sites", ",".join(SITES))
        assert code == 1 and "no release layout" in out and "halted" in out
        assert [m.topic.split("/")[2] for m in offers.on("/cmd/update")] == ["s1"]
        body = offers.on("/cmd/update")[0].json()
        assert body["manifest"]["release"] == "r9" and body["urgent"] is False
    finally:
        offers.stop()
