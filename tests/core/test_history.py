"""The catch-up history on a real SQLite file: bounded, newest kept, paged by position."""

from __future__ import annotations

import json
from pathlib import Path

from agent.history import PRUNE_EVERY, History
from agent.logs import KvLogger


def event(seq: int, kind: str = "audit") -> tuple[str, int, str, bytes]:
    body = {"seq": seq, "boot_id": "b" * 32, "historical": False, "id": f"e{seq}", "ts": 1000.0 + seq,
            "kind": kind, "severity": "info", "source": "t", "data": {"n": seq}}
    return ("b" * 32, seq, f"event/{kind}", json.dumps(body).encode())


def test_history_keeps_only_the_newest_and_skips_what_is_not_an_event(tmp_path: Path) -> None:
    h = History(tmp_path / "history.db", KvLogger("test"), max_rows=50)
    for start in range(0, 1000, 10):
        h.add([event(s) for s in range(start + 1, start + 11)] + [("b" * 32, None, "snapshot/c/e", b"\xff")])
    got = h.page(None, "b" * 32, 0, None, 0, 500, 1 << 20)
    seqs = [d["seq"] for d in got["items"]]
    assert len(seqs) <= 50 + PRUNE_EVERY and seqs[-1] == 1000 and seqs == sorted(seqs)
    assert got["complete"] is False  # seq 1 is long gone
    h.close()


def test_pages_follow_next_and_filter_by_time_and_kind(tmp_path: Path) -> None:
    h = History(tmp_path / "history.db", KvLogger("test"))
    h.add([event(s, "asrun" if s % 2 else "audit") for s in range(1, 21)])
    seen, page = [], 0
    while page is not None:
        got = h.page(1010.0, None, None, ["asrun"], page, 3, 1 << 20)
        assert got["complete"] is True and len(got["items"]) <= 3
        seen += [d["seq"] for d in got["items"]]
        page = got["next"]
    assert seen == [11, 13, 15, 17, 19]
    assert all(d["historical"] for d in h.page(1010.0, None, None, None, 0, 50, 1 << 20)["items"])
    h.close()
