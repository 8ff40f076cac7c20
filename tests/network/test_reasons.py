"""Why a link is up or down: the English sentence of logs and events as before, and a template with parameters in
the link state, which the console shows in Vietnamese."""

from __future__ import annotations

import re
from pathlib import Path

from agent.driver import health_text
from drivers.console.i18n import REASONS, link_reason
from drivers.network.config import NetworkConfig, Thresholds
from drivers.network.linkjudge import LinkJudge, Verdict
from drivers.network.wan import WanFailover
from tests.network.test_judge_policy import TARGETS, drive, new_judge
from tests.support.context import RecordingContext

ENGLISH = {  # the sentences logs, events, hooks and `commune-agent links` have always carried
    "up": re.compile(r"healthy on [23]/3 targets over \d+s \(loss <= \d+\.\d%\)"),
    "outage": re.compile(r"\d+ probes in a row unanswered on [23]/3 targets"),
    "degraded": re.compile(r"degraded on [23]/3 targets: (\w+ (loss_pct|rtt_avg_ms)=[\d.]+(, )?)+"),
    "never": re.compile(r"not healthy within 10s of start"),
}


def _check(v: Verdict, sentence: str) -> None:
    assert ENGLISH[sentence].fullmatch(v.reason), v.reason
    assert v.reason == health_text(v.why.template, v.why.params)
    row = {"reason": v.reason, "reason_template": v.why.template, "reason_params": v.why.params}
    vi = link_reason("vi", row)
    assert v.why.template in REASONS and vi != v.reason and any(ord(ch) > 127 for ch in vi), vi
    assert link_reason("en", row) == v.reason


def test_every_link_verdict_carries_its_sentence_and_its_template() -> None:
    judge = new_judge()
    up = drive(judge, 0, 20, lambda t, now: False)
    _check(up[0], "up")
    _check(drive(judge, 20, 5, lambda t, now: True)[0], "outage")
    drive(judge, 25, 30, lambda t, now: False)
    assert judge.state == "up"
    slow = drive(judge, 55, 60, lambda t, now: False, rtt=2.0)  # late answers: not an outage, but degraded
    _check(slow[0], "degraded")
    assert slow[0].why.params["measured"] == slow[0].reason.split(": ", 1)[1]
    never_down = Thresholds(down_consecutive=1000, min_samples=10000)  # neither an outage nor degraded
    silent = LinkJudge("wan2", {t: (0.5, 0.75) for t in TARGETS}, never_down, 0.0)
    _check(drive(silent, 0, 12, lambda t, now: True)[0], "never")


def test_the_link_state_names_the_template_and_its_parameters(tmp_path: Path) -> None:
    cfg = NetworkConfig.model_validate({
        "links": [{"name": "wan1", "interface": "eth9", "source": "10.9.0.2",
                   "targets": [{"address": "10.9.0.1", "name": t} for t in TARGETS]}],
        "failover": {"manage_routes": False, "policy_routing": False}})
    wan = WanFailover(RecordingContext("network", cfg, tmp_path), cfg)  # type: ignore[arg-type]
    row = wan.state()["links"][0]
    assert (row["reason"], row["reason_template"], row["reason_params"]) == ("starting", "starting", {})
    assert link_reason("vi", row) == "đang khởi động"
    wan.monitors["wan1"].judge = judge = new_judge()
    drive(judge, 0, 20, lambda t, now: False)
    drive(judge, 20, 5, lambda t, now: True)
    row = wan.state()["links"][0]
    assert row["state"] == "down" and row["reason"] == judge.reason
    assert row["reason_template"] == "{lost_in_row} probes in a row unanswered on {targets_silent}/{targets} targets"
    assert set(row["reason_params"]) == {"lost_in_row", "targets_silent", "targets"}
    assert link_reason("vi", row) == (f"{row['reason_params']['lost_in_row']} lần kiểm tra liên tiếp không có phản "
                                      f"hồi trên {row['reason_params']['targets_silent']}/3 địa chỉ kiểm tra")
