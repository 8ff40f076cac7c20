"""The fleet CLI against a real broker with no agents: sites that never answer, a resume after a kill between
writing "sending" and the PUBACK, one-line errors and their exit codes, a release published in retained chunks."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

from agent.bundle import verify_manifest
from agent.cli import main
from agent.fleet.config import load_fleet_config
from agent.fleet.rollout import Rollout
from agent.signing import read_private_key
from tests.fleet.lab import PREFIX, Desk
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until


def _site_file(tmp: Path, site: str) -> Path:
    path = tmp / f"{site}.yaml"
    path.write_text(yaml.safe_dump({"site": {"site_id": site}, "coc": {"host": "127.0.0.1"}}))
    return path


def test_a_site_that_never_answers_fails_after_the_timeout_and_halts(tmp_path: Path, broker: Broker,
                                                                     capsys: Any) -> None:
    desk = Desk(tmp_path, broker, canaries=1)
    code, out, _ = desk.run(capsys, "config", "push", "--file", f"ghost={_site_file(tmp_path, 'ghost')}",
                            "--file", f"other={_site_file(tmp_path, 'other')}", "--timeout", "1")
    assert code == 1 and "no answer in 1 s" in out and "halted" in out
    (state,) = desk.rollouts()
    assert state["progress"]["other"]["state"] == "pending"


def test_resume_sends_again_only_to_a_site_whose_send_was_cut_short(tmp_path: Path, broker: Broker,
                                                                    capsys: Any) -> None:
    """Killed between "sending" and the PUBACK: a site whose retained change doc names the change has it and is
    waited on; one with no such doc never got it and is sent it now."""
    desk = Desk(tmp_path, broker, canaries=0, batch=5)
    cfg = load_fleet_config(desk.path)
    r = Rollout.create(cfg, "config", "config_apply", ["has", "lost"], {}, {"has": {"patch": {}},
                                                                            "lost": {"patch": {}}}, 0, 5, 5, 1)
    for site in ("has", "lost"):
        r.progress[site] = {"state": "sending"}
    r.save()
    rec = Recorder(broker.port, topics=(f"{PREFIX}/+/cmd/config_apply",)).start()
    try:
        rec.publish(f"{PREFIX}/has/change", json.dumps({"change_id": r.change_id("has"), "kind": "config",
                                                        "state": "committed", "to": {"n": 4, "sha": "abc"}}),
                    retain=True)
        code, out, _ = desk.run(capsys, "rollout", "resume", r.id)
        assert code == 1  # "lost" had no agent to answer
        sent = [m.topic.split("/")[2] for m in rec.on("/cmd/config_apply")]
        assert sent == ["lost"]
        body = rec.on("/cmd/config_apply")[0].json()
        assert body["change_id"] == r.change_id("lost") and len(body["sig"]) == 128
        progress = Rollout.load(cfg, r.id).progress
        assert progress["has"]["state"] == "committed" and progress["lost"]["reason"] == "no answer in 1 s"
    finally:
        rec.stop()


def test_errors_are_one_line_with_their_exit_code(tmp_path: Path, broker: Broker, capsys: Any) -> None:
    desk = Desk(tmp_path, broker)
    code, _, err = desk.run(capsys, "config", "push", "--file", f"s2={_site_file(tmp_path, 's1')}")
    assert code == 2 and err == "fleet: config " + str(tmp_path / "s1.yaml") + ": site.site_id is 's1', not 's2'\n"
    code, _, err = desk.run(capsys, "config", "push", "--patch", str(tmp_path / "none.yaml"), "--sites", "a")
    assert code == 2 and err.startswith("fleet: patch ") and err.count("\n") == 1
    (tmp_path / "p.yaml").write_text("host:\n  interval_s: ${site.interval}\n")
    code, _, err = desk.run(capsys, "config", "push", "--patch", str(tmp_path / "p.yaml"), "--sites", "a")
    assert code == 2 and "site a has no 'interval'" in err
    assert desk.run(capsys, "rollout", "resume", "nope")[0] == 2
    code, _, err = desk.run(capsys, "config", "push", "--sites", "a")
    assert code == 2 and err.startswith("fleet: what to push?")
    bad = tmp_path / "bad.yaml"
    bad.write_text("broker: {host: h, port: 0}\nstate_dir: x\nextra: 1\n")
    assert main(["fleet", "list", "--fleet-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "broker.port" in err and "extra" in err and err.count("\n") == 1
    wrong = tmp_path / "wrong.yaml"
    (tmp_path / "wrong.pw").write_text("not-the-password\n")
    wrong.write_text(yaml.safe_dump({"broker": {"host": "127.0.0.1", "port": broker.port, "username": "coc",
                                                "password_file": str(tmp_path / "wrong.pw")}}))
    assert main(["fleet", "list", "--fleet-config", str(wrong)]) == 2
    assert "refused the login of coc" in capsys.readouterr().err


def _wheel(d: Path, name: str, version: str, size: int) -> None:
    with zipfile.ZipFile(d / f"{name}-{version}-py3-none-any.whl", "w") as z:
        z.writestr(f"{name}/__init__.py", "x" * size)


def test_a_release_is_published_in_retained_chunks_the_boxes_can_verify(tmp_path: Path, broker: Broker,
                                                                        capsys: Any) -> None:
    desk = Desk(tmp_path, broker)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "commune_agent", "0.2.0", 9000)
    _wheel(wheels, "dep", "1.0", 3000)
    built = desk.json(capsys, "release", "build", "--wheels", str(wheels), "--out", str(tmp_path / "out"),
                      "--chunk-bytes", "4096", "--release-id", "r2")
    assert built["release"] == "r2" and built["chunks"] > 2
    assert desk.run(capsys, "release", "push", "r2", "--sites", "s1")[0] == 2  # not published yet
    published = desk.json(capsys, "release", "publish", built["dir"])
    assert published["chunks"] == built["chunks"]

    rec = Recorder(broker.port, topics=(f"{PREFIX}/releases/#",)).start()  # a late subscriber: retained only
    try:
        doc = wait_until(lambda: next((m.json() for m in rec.on("/releases/r2/manifest")), None), 5,
                         what="manifest")
        key = read_private_key(tmp_path / "coc-keys" / "release.key").public_key()
        assert verify_manifest(doc["manifest"], doc["manifest_sig"], key) is None
        chunks = wait_until(lambda: [m for m in rec.on("/releases/r2/#") if not m.topic.endswith("manifest")]
                            if len(rec.on("/releases/r2/#")) > built["chunks"] else None, 5, what="chunks")
        by_n = {int(m.topic.rsplit("/", 1)[1]): m.payload for m in chunks}
        assert [hashlib.sha256(by_n[n]).hexdigest() for n in range(len(by_n))] == doc["manifest"]["chunks"]
        assert b"".join(by_n[n] for n in range(len(by_n))) == Path(built["bundle"]).read_bytes()
    finally:
        rec.stop()


def test_the_example_fleet_config_validates(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "config" / "fleet.example.yaml").read_text()
    for name in ("coc-ca.crt", "coc.password"):
        (tmp_path / name).write_text("x\n")
    path = tmp_path / "fleet.yaml"
    path.write_text(text.replace("/etc/commune-fleet/", f"{tmp_path}/"))
    cfg = load_fleet_config(path)
    assert (cfg.rollout.canaries, cfg.rollout.batch, cfg.rollout.max_failures) == (2, 10, 0)
