"""Property-based fuzzing of the three wide surfaces: the command router, the config loader, the spool."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.commands import CommandRouter, sign
from agent.config import ConfigError, load
from agent.logs import KvLogger
from agent.spool import Cursor, Priority, Record, Spool

KEY = b"fuzzing-key-0123456789"

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                                 kids, max_size=4),
                          max_leaves=12)
# text with lone surrogates too (what json.loads makes of "\ud800")
hostile_text = st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=40).map("".join)
body = st.fixed_dictionaries({}, optional={
    "request_id": st.one_of(st.text(max_size=300), st.integers(), json_value, hostile_text),
    "ts": st.one_of(st.floats(), st.integers(min_value=-10**400, max_value=10**400), st.text(max_size=5),
                    st.just(time.time())),
    "sig": st.one_of(st.text(max_size=70), st.from_regex(r"[0-9a-f]{64}", fullmatch=True), hostile_text),
    "args": json_value,
})


def payload_of(data: Any, kind: int, raw: bytes) -> bytes:
    if kind == 0:
        return raw
    try:
        return json.dumps(data, ensure_ascii=kind == 1, allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return raw


class Loop:
    """One event loop for thousands of examples (a fresh loop per example would dominate the run)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


LOOP = Loop()


def make_router(tmp: Path) -> CommandRouter:
    # replay memory in memory only: its file is tested on its own, and rewriting it 5,000 times is slow
    r = CommandRouter(KvLogger("fuzz.cmd"), 4096, KEY, 300, "t1", None)

    async def ok(args: dict) -> dict:
        return {"n": len(args)}

    async def bug(args: dict) -> dict:
        raise KeyError("boom")

    r.register("ping", ok)
    r.register("bug", bug)
    return r


@pytest.mark.slow
def test_ten_thousand_commands_each_get_a_result(tmp_path: Path) -> None:
    r = make_router(tmp_path)
    seen: list[dict] = []
    command = st.tuples(st.one_of(st.sampled_from(["ping", "bug", "reload", ""]), hostile_text), body,
                        st.integers(0, 3), st.binary(max_size=200), st.booleans())

    @settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(batch=st.lists(command, min_size=10, max_size=10))
    def ten(batch: list[tuple[str, dict, int, bytes, bool]]) -> None:
        for name, data, kind, raw, resign in batch:
            if resign and kind:
                try:
                    data = dict(data, ts=time.time())
                    data["sig"] = sign(KEY, "t1", name, data)
                except (UnicodeEncodeError, TypeError, ValueError):
                    pass
            res = LOOP.run(r.handle(name, payload_of(data, kind, raw)))
            assert isinstance(res, dict) and isinstance(res["ok"], bool)
            assert res["ok"] or isinstance(res.get("error"), str)
            json.dumps(res, ensure_ascii=False).encode("utf-8")  # publishable as it is
            seen.append(res)

    ten()
    assert len(seen) >= 10_000
    assert sum(r.counters.values()) == len(seen)
    assert r.counters["ok"] > 0 and r.counters["rejected_auth"] > 0 and r.counters["rejected_malformed"] > 0


yaml_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
yaml_tree = st.recursive(yaml_scalar, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.sampled_from(["site", "coc", "spool", "host", "port", "site_id", "max_bytes", "path", "tls", "health",
                     "interval_s", "command_key_file", "data_dir", "logging", "level", "x"]) | st.text(max_size=6),
    kids, max_size=5), max_leaves=15)


def test_config_loader_only_ever_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    key = tmp_path / "k"
    key.write_bytes(b"\x00\xff")

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(tree=yaml_tree, raw=st.binary(max_size=300), as_text=st.booleans())
    @example(tree={"\n": None}, raw=b"", as_text=True)  # a key holding a newline once split the error line
    @example(tree={"site": {"name\u2028x": 1}}, raw=b"", as_text=True)
    def one(tree: Any, raw: bytes, as_text: bool) -> None:
        if as_text:
            base = {"site": {"site_id": "t1"}, "coc": {"host": "h", "command_key_file": str(key)}}
            if isinstance(tree, dict):
                base.update(tree)
            path.write_text(yaml.safe_dump(base, allow_unicode=True))
        else:
            path.write_bytes(raw)
        try:
            load(path)
        except ConfigError as exc:
            assert exc.lines and all(line.startswith("config error: ") and "\n" not in line for line in exc.lines)

    one()


record = st.builds(Record, topic=st.text(st.characters(min_codepoint=32, max_codepoint=0x10FFFF,
                                                        exclude_categories=("Cs",)), min_size=1, max_size=40),
                   payload=st.binary(max_size=3000), priority=st.sampled_from([int(p) for p in Priority]),
                   envelope=st.booleans(), historical=st.booleans())


@pytest.mark.slow
def test_spool_round_trip(tmp_path: Path) -> None:
    counter = iter(range(10**6))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(batches=st.lists(st.lists(record, min_size=1, max_size=20), min_size=1, max_size=5))
    def one(batches: list[list[Record]]) -> None:
        path = tmp_path / f"s{next(counter)}.db"
        s = Spool(path, 64 << 20, "boot", KvLogger("fuzz.spool"))
        s.open()
        try:
            for b in batches:
                s.put_sync(b)
            s.close()
            s = Spool(path, 64 << 20, "boot2", KvLogger("fuzz.spool"))
            s.open()
            cursor = Cursor()
            got = []
            while rows := s.fetch(7, cursor):
                got += rows
            flat = [r for b in batches for r in b]
            assert len(got) == len(flat)
            for prio in Priority:
                want = [(r.topic, r.payload, r.envelope) for r in flat if r.priority == prio]
                have = [(r.topic, r.payload, r.seq is not None) for r in got if r.priority == prio]
                assert have == want
            seqs = sorted(r.seq for r in got if r.seq is not None)
            assert seqs == list(range(1, len(seqs) + 1))
            assert all(r.boot_id == "boot" for r in got)
            assert s.delete_sync(got) == len(got) and s.depth == 0 and s.bytes == 0
        finally:
            s.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)

    one()
