"""Dual-WAN failover on real namespaces: the driver runs in the router namespace and moves its routes.

The scenarios run in parallel threads (each on its own topology) so the module takes about as long as
the slowest one, the 60 s random-loss run.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.network import scenarios

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[dict[str, Any]]]]:
    base = tmp_path_factory.mktemp("failover")
    pool = ThreadPoolExecutor(max_workers=4)
    futures = {
        "total": pool.submit(scenarios.total_loss_then_recovery, base / "total", "t", 8.0),
        "loss30": pool.submit(scenarios.no_failover_under, base / "loss", "l", 60.0, 30),
        "dead": pool.submit(scenarios.no_failover_under, base / "dead", "d", 25.0, 0, scenarios.TARGETS[2]),
        "flap": pool.submit(scenarios.flapping, base / "flap", "f"),
    }
    try:
        yield futures
    finally:
        pool.shutdown(wait=True)


def test_total_loss_moves_traffic_to_wan2_quickly(runs: dict[str, Future[dict[str, Any]]]) -> None:
    r = runs["total"].result(timeout=180)
    assert r["dev_after_failover"] == "wan2"
    assert r["ping_after_failover"], "unbound traffic must reach the internet through wan2"
    assert r["failover"]["from"] == "wan1" and r["failover"]["to"] == "wan2"
    assert "unanswered" in r["failover"]["reason"]
    # the target is 3 s; allow slack for a busy 2-core test machine (the benchmark measures speed)
    assert r["detect_switch_s"] < 6.0, r
    assert r["links_seen"][-2:] == ["wan2", "wan1"]
    assert r["hook_log"] == "failover wan1 wan2\n"  # the hook ran with a fixed argv, details in its env


def test_failback_only_after_hold_time(runs: dict[str, Future[dict[str, Any]]]) -> None:
    r = runs["total"].result(timeout=180)
    assert r["failback_after_up_s"] >= 8.0 - 0.3, r  # failback_after_s = 8 in this scenario
    assert r["failback_after_up_s"] < 8.0 + 4.0, r
    assert r["dev_after_failback"] == "wan1"


def test_thirty_percent_loss_for_a_minute_does_not_fail_over(runs: dict[str, Future[dict[str, Any]]]) -> None:
    r = runs["loss30"].result(timeout=240)
    assert r["failovers"] == 0 and r["wan1_down"] == 0, r
    assert r["dev"] == "wan1"
    assert r["wan1_loss_pct"], "loss telemetry for wan1 was reported"
    assert 10 <= sum(r["wan1_loss_pct"]) / len(r["wan1_loss_pct"]) <= 50, r["wan1_loss_pct"]


def test_one_dead_target_of_three_does_not_fail_over(runs: dict[str, Future[dict[str, Any]]]) -> None:
    r = runs["dead"].result(timeout=180)
    assert r["failovers"] == 0 and r["wan1_down"] == 0, r
    assert r["dev"] == "wan1"
    dead = f"icmp:{scenarios.TARGETS[2]}"
    assert {p["link"] for p in r["probe_down"] if p["target"] == dead} == {"wan1", "wan2"}


def test_flapping_link_is_damped(runs: dict[str, Future[dict[str, Any]]]) -> None:
    r = runs["flap"].result(timeout=240)
    assert r["wan1_downs"] == 4
    assert r["failbacks"] == 2, r  # max_switches_per_hour = 2
    assert r["failovers"] == 3, r  # forced moves off a dead link are never damped
    assert r["dev"] == "wan2"
    state = json.loads(r["state_file"])
    assert state["current"] == "wan2" and state["failback_damped"] is True


def test_state_file_written_for_cli(runs: dict[str, Future[dict[str, Any]]], tmp_path: Path) -> None:
    r = runs["flap"].result(timeout=240)
    state = json.loads(r["state_file"])
    assert [x["name"] for x in state["links"]] == ["wan1", "wan2"]
    assert all(len(x["targets"]) == 3 for x in state["links"])
