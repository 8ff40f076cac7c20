"""`commune-agent bulletin ...` against a real config file and the store the driver uses."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from drivers.broadcast import cli
from drivers.broadcast.store import DB_FILE, Store
from tests.broadcast.harness import SHORT_VI, local_at


@pytest.fixture
def agent_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "site": {"site_id": "18241"}, "coc": {"host": "127.0.0.1"}, "data_dir": str(tmp_path / "data"),
        "broadcast": {"zones": {"amp": {"type": "soundcard"}}, "tts": {"engines": ["espeak"]}},
    }))
    return path


def _run(argv: list[str], config: Path) -> int:
    parser = argparse.ArgumentParser(prog="commune-agent")
    parser.add_argument("--config")
    cli.add_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["--config", str(config), *argv])
    return args.func(args)


def test_add_list_cancel_log_preview(tmp_path: Path, agent_yaml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "hop.yaml"
    f.write_text(yaml.safe_dump({"title": "Họp", "text": SHORT_VI, "schedule": {"at": local_at(3600)}},
                                allow_unicode=True))
    assert _run(["bulletin", "add", str(f)], agent_yaml) == 0
    assert "added hop: next airings" in capsys.readouterr().out
    assert _run(["bulletin", "list"], agent_yaml) == 0
    assert "hop" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"text": SHORT_VI, "zones": ["nowhere"], "schedule": {"at": local_at(60)}}))
    assert _run(["bulletin", "add", str(bad)], agent_yaml) == 2
    assert "unknown zone 'nowhere'" in capsys.readouterr().err

    out = tmp_path / "preview.wav"
    assert _run(["bulletin", "preview", str(f), "--out", str(out)], agent_yaml) == 0
    text = capsys.readouterr().out
    assert "bảy giờ ba mươi phút" in text and "engine: espeak" in text and out.stat().st_size > 10_000

    assert _run(["bulletin", "cancel", "hop"], agent_yaml) == 0
    assert _run(["bulletin", "cancel", "hop"], agent_yaml) == 1
    store = Store(tmp_path / "data" / "broadcast" / DB_FILE)
    try:
        assert store.all() == []
        store.add_asrun({"bulletin_id": "hop", "zone": "amp", "scheduled": 1.0, "started": 1.05, "ended": 9.0,
                         "lateness_ms": 50.0, "outcome": "played", "engine": "espeak"})
    finally:
        store.close()
    capsys.readouterr()
    assert _run(["bulletin", "log", "--json"], agent_yaml) == 0
    assert '"outcome": "played"' in capsys.readouterr().out
