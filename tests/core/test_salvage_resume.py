"""A salvage killed half way goes on after the restart: every readable row of the damaged spool reaches the
COC exactly once (real agent processes, kill -9, real mosquitto)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from agent.logs import KvLogger
from agent.spool import Spool
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"
ROWS = 1000  # about 3 s of salvage: room to kill it half way on a loaded machine
STRIDE = 5000  # a spool that ran for long has sparse ids: the salvage reads one range of ids per row here


def damaged_spool(path: Path) -> set[int]:
    """A spool with ROWS old readings, one of its table's leaf pages overwritten; returns the readable ones."""
    s = Spool(path, 64 << 20, "old-boot", KvLogger("test.spool"))
    s.open()
    s.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for i in range(ROWS):
        body = json.dumps({"readings": [{"name": "n", "value": i, "ts": 1.0}], "pad": "x" * 900}).encode()
        db.execute("INSERT INTO msgs(id, prio, topic, boot_id, seq, historical, created, payload, size) "
                   "VALUES (?, 1, 'telemetry/old', 'old-boot', ?, 0, 1.0, ?, ?)", (i * STRIDE + 1, i + 1, body,
                                                                                      len(body) + 140))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    leaves = [r[0] for r in db.execute("SELECT pageno FROM dbstat WHERE name='msgs' AND pagetype='leaf' "
                                       "ORDER BY pageno")]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as f:
        for pageno in leaves[len(leaves) // 2:len(leaves) // 2 + 1]:
            f.seek((pageno - 1) * page)
            f.write(b"\xa5" * page)
    readable = set()
    ro = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    for i in range(ROWS):
        try:
            if ro.execute("SELECT 1 FROM msgs WHERE id=?", (i * STRIDE + 1,)).fetchone():
                readable.add(i)
        except sqlite3.DatabaseError:
            pass
    ro.close()
    assert ROWS - 20 < len(readable) < ROWS
    return readable


def salvaged_rows(path: Path) -> int:
    """Rows the salvage has committed into the fresh spool so far (0 while the damaged file is still there)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
        try:
            return int(db.execute("SELECT count(*) FROM msgs WHERE boot_id='old-boot'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def test_a_salvage_killed_half_way_resumes_after_restart_and_copies_no_row_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    spool = data / "spool.db"
    readable = damaged_spool(spool)
    broker = Broker(tmp_path / "mosq").start()
    rec = Recorder(broker.port, topics=(f"{BASE}/telemetry/old", f"{BASE}/health")).start()
    cfg = write_config(tmp_path / "agent.yaml", broker.port, data, broker.password_file("agent"))
    log = tmp_path / "agent.log"
    agent = AgentProcess(cfg, log).start()
    try:
        # kill -9 once the salvage has committed part of the rows into the fresh spool
        wait_until(lambda: list(data.glob("spool.db.corrupt-*")) and salvaged_rows(spool) >= 20, 30,
                   interval=0.005, what="salvage under way")
        agent.kill9()
        assert "spool_salvaged" not in log.read_text(), "the salvage must be killed before it ended"
        assert salvaged_rows(spool) < len(readable)
        agent = AgentProcess(cfg, log).start()

        def arrived() -> Counter[int]:
            return Counter(r["value"] for m in rec.on(f"{BASE}/telemetry/old") for r in m.json()["readings"])

        wait_until(lambda: set(arrived()) >= readable, 30, what="every readable row delivered")
        wait_until(lambda: any(m.json()["spool"]["spool_depth"] == 0 for m in rec.on(f"{BASE}/health")[-1:]), 20,
                   what="the spool drained")
        got = arrived()
        assert set(got) == readable and max(got.values()) == 1, [n for n, c in got.items() if c > 1][:10]
        assert not list(data.glob("spool.db.corrupt-*.salvage")), "the finished salvage is not resumed again"
        assert log.read_text().count("spool_salvaged") == 1
    finally:
        agent.stop()
        rec.stop()
        broker.stop()
