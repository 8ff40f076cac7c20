"""The one state writer's failure policy, on a real full disk and a real read-only mount."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.logs import KvLogger
from agent.statefile import read_json, write_json, write_json_logged
from tests.support.tmpfs import mounted_tmpfs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of its own, so filling it fills nobody else's disk."""
    with mounted_tmpfs(tmp_path / "mnt", "1m") as mnt:
        yield mnt


def _fill(mnt: Path) -> None:
    """Take every free block, so the next write gets ENOSPC."""
    with open(mnt / "filler", "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


def _leftovers(d: Path, name: str) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(f".{name}."))


def _logger(records: list[logging.LogRecord]) -> KvLogger:
    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    base = logging.getLogger("test.statefile")
    base.handlers[:] = [Keep()]
    base.setLevel(logging.DEBUG)
    base.propagate = False
    return KvLogger("test.statefile")


def test_round_trip_is_sorted_unicode_json(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    write_json(path, {"b": 1, "a": "Ủy ban"})
    text = path.read_text(encoding="utf-8")
    assert text.index('"a"') < text.index('"b"') and "Ủy ban" in text and text.endswith("\n")
    assert read_json(path) == {"a": "Ủy ban", "b": 1}
    assert _leftovers(path.parent, path.name) == []


def test_read_json_says_none_for_missing_and_corrupt(tmp_path: Path) -> None:
    assert read_json(tmp_path / "absent.json") is None
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"half": ')
    assert read_json(bad) is None
    bad.write_bytes(b"\xff\xfe not utf-8")
    assert read_json(bad) is None


@needs_root
def test_disk_full_raises_keeps_old_content_and_leaves_no_temp(small_tmpfs: Path) -> None:
    path = small_tmpfs / "state.json"
    write_json(path, {"generation": 1})
    _fill(small_tmpfs)
    big = {"blob": "x" * 200_000}
    with pytest.raises(OSError) as err:
        write_json(path, big)
    assert err.value.errno == errno.ENOSPC
    assert read_json(path) == {"generation": 1}
    assert _leftovers(small_tmpfs, path.name) == []


@needs_root
def test_disk_full_logged_policy_returns_false_and_names_the_file(small_tmpfs: Path) -> None:
    path = small_tmpfs / "links.json"
    write_json(path, {"generation": 1})
    _fill(small_tmpfs)
    records: list[logging.LogRecord] = []
    assert write_json_logged(path, {"blob": "x" * 200_000}, _logger(records)) is False
    lines = [r.getMessage() for r in records]
    assert len(lines) == 1 and "state_write_failed" in lines[0] and str(path) in lines[0]
    assert "No space left on device" in lines[0]
    assert read_json(path) == {"generation": 1}
    assert _leftovers(small_tmpfs, path.name) == []
    # room again: the next write goes through
    for filler in small_tmpfs.glob("filler*"):
        filler.unlink()
    assert write_json_logged(path, {"generation": 2}, _logger(records)) is True
    assert read_json(path) == {"generation": 2}


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may write: a read-only mount as root (root ignores modes), mode 0555 otherwise."""
    if os.geteuid() == 0:
        with mounted_tmpfs(tmp_path / "ro", "1m") as mnt:
            write_json(mnt / "state.json", {"generation": 1})
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            yield mnt
    else:
        d = tmp_path / "ro"
        d.mkdir()
        write_json(d / "state.json", {"generation": 1})
        d.chmod(0o555)
        try:
            yield d
        finally:
            d.chmod(0o755)


def test_read_only_dir_raises_and_keeps_old_content(read_only_dir: Path) -> None:
    path = read_only_dir / "state.json"
    with pytest.raises(OSError) as err:
        write_json(path, {"generation": 2})
    assert err.value.errno in (errno.EROFS, errno.EACCES)
    assert read_json(path) == {"generation": 1}
    assert _leftovers(read_only_dir, path.name) == []


def test_read_only_dir_logged_policy_does_not_raise(read_only_dir: Path) -> None:
    records: list[logging.LogRecord] = []
    path = read_only_dir / "state.json"
    assert write_json_logged(path, {"generation": 2}, _logger(records)) is False
    assert len(records) == 1 and "state_write_failed" in records[0].getMessage()
    assert read_json(path) == {"generation": 1}


def test_unserialisable_data_leaves_no_temp_and_old_content(tmp_path: Path) -> None:
    """A failure that is not an OSError (a bug in the caller) still cleans up, and is not swallowed."""
    path = tmp_path / "state.json"
    write_json(path, {"generation": 1})
    with pytest.raises(ValueError):
        write_json(path, {"loop": _circular()})
    assert json.loads(path.read_text()) == {"generation": 1}
    assert _leftovers(tmp_path, path.name) == []


def _circular() -> list[object]:
    loop: list[object] = []
    loop.append(loop)
    return loop
