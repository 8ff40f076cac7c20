"""The one state writer: atomic, its failure policy on a real full disk and a real read-only mount, and the drivers'
ctx.write_state (the supervisor's and the tests' context alike): off the loop, in order, failures counted."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import load
from agent.logs import KvLogger
from agent.statefile import read_json, write_json, write_json_logged
from agent.supervisor import DriverContext, SupervisedDriver, Supervisor
from drivers.registry import SPECS
from tests.support.context import RecordingContext
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wait import async_wait_until, wait_until

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


# ---- ctx.write_state: the drivers' one way to write a state file ---------------------------------------------------

def _contexts(data_dir: Path) -> list[Any]:
    """The supervisor's DriverContext and the tests' RecordingContext: both must behave alike."""
    cfg = data_dir.parent / "agent.yaml"
    cfg.write_text(yaml.safe_dump({"site": {"site_id": "t1", "name": "test"}, "coc": {"host": "127.0.0.1"},
                                   "data_dir": str(data_dir.parent / "agent-data")}))
    sup = Supervisor(load(cfg))
    return [DriverContext(sup, SupervisedDriver(sup, SPECS[0], None), data_dir),
            RecordingContext("host", None, data_dir)]


def _counters(ctx: Any) -> Counter[str]:
    return ctx._supervised.counters if isinstance(ctx, DriverContext) else ctx.counters


def test_write_state_goes_to_the_data_dir_or_an_absolute_path(tmp_path: Path) -> None:
    async def main() -> None:
        for i, ctx in enumerate(_contexts(tmp_path / "data")):
            assert await ctx.write_state("state.json", {"n": i}) is True
            assert read_json(tmp_path / "data" / "state.json") == {"n": i}
            elsewhere = tmp_path / "run" / f"links{i}.json"
            assert await ctx.write_state(elsewhere, {"n": i}) is True
            assert read_json(elsewhere) == {"n": i}

    asyncio.run(main())


def test_write_state_on_a_read_only_dir_is_counted_and_logged_from_a_worker_thread(
        read_only_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The fsync happens off the loop: the failure is logged by the thread that wrote, not by the loop's."""
    loop_thread = threading.get_ident()

    async def main() -> None:
        for ctx in _contexts(read_only_dir):
            caplog.clear()
            assert await ctx.write_state("state.json", {"generation": 2}) is False
            assert _counters(ctx) == Counter({"state_write_failed": 1})
            [record] = [r for r in caplog.records if "state_write_failed" in r.getMessage()]
            assert str(read_only_dir / "state.json") in record.getMessage()
            assert record.thread != loop_thread, "the write ran on the event loop's thread"
        assert read_json(read_only_dir / "state.json") == {"generation": 1}

    asyncio.run(main())


def test_a_burst_of_writes_ends_with_the_latest_and_the_data_is_taken_when_asked(tmp_path: Path) -> None:
    """Writes of one file never overtake each other; the data is encoded at the call, so changing it after is safe."""
    async def main() -> None:
        ctx = RecordingContext("network", None, tmp_path / "data")
        doc: dict[str, Any] = {"devices": {}}
        pending = []
        for i in range(200):
            doc["devices"][f"m{i}"] = i
            pending.append(ctx.write_state("inventory.json", doc))
        doc["devices"].clear()  # after the last call: must not reach the file
        assert all(await asyncio.gather(*pending))
        assert read_json(tmp_path / "data" / "inventory.json") == {"devices": {f"m{i}": i for i in range(200)}}
        assert _leftovers(tmp_path / "data", "inventory.json") == []

    asyncio.run(main())


def test_write_state_from_sync_code_lands_without_an_await(tmp_path: Path) -> None:
    """A caller that cannot await (a sync method on the loop) still gets its state written, in order."""
    async def main() -> None:
        ctx = RecordingContext("broadcast", None, tmp_path / "data")
        ctx.write_state("state.json", {"n": 1})
        ctx.write_state("state.json", {"n": 2})
        await async_wait_until(lambda: read_json(tmp_path / "data" / "state.json") == {"n": 2}, 5,
                               what="the state written")

    asyncio.run(main())


WRITER = ("import os, sys\n"
          "from pathlib import Path\n"
          "from agent.statefile import write_json\n"
          "path, i = Path(sys.argv[1]), 0\n"
          "while True:\n"
          "    write_json(path, {'pid': os.getpid(), 'generation': i, 'pad': 'x' * 200_000})\n"
          "    i += 1\n")


def test_a_writer_killed_at_any_moment_leaves_a_whole_file(tmp_path: Path) -> None:
    """kill -9 mid-write, five times at different moments: the file is always one whole generation."""
    path = tmp_path / "state.json"
    root = Path(__file__).resolve().parents[2]
    for delay in (0.0, 0.013, 0.029, 0.041, 0.067):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=root,
                                env={**os.environ, "PYTHONPATH": str(root)})
        try:
            wait_until(lambda p=proc.pid: (read_json(path) or {}).get("pid") == p, 20, what="the writer's first file")
            time.sleep(delay)  # the moment of the kill, spread over the write cycle
        finally:
            proc.kill()
            proc.wait()
        doc = read_json(path)
        assert isinstance(doc, dict) and doc["pad"] == "x" * 200_000, "a partial or damaged file after kill -9"
