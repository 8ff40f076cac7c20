"""Per-link verdict from its probe samples: up/down with hysteresis, a hold time and majority of targets.

Two ways down, so that a total outage is seen in ~2 s while heavy random loss is not an outage:
- outage: `down_consecutive` probes in a row (all targets interleaved by send time) went unanswered for
  `timeout_s`, with no answer to any newer probe, and the run covers a majority of targets. Random
  loss of p breaks such a run with probability 1-p at every probe; only a silent link keeps it going.
- degraded: over `window_s`, a majority of targets lose >= down_loss_pct or average >= down_rtt_ms.
One way up: over the last `up_after_s`, a majority of targets answer within timeout_s with loss
<= up_loss_pct and average RTT <= up_rtt_ms. Any change is held at least `min_hold_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.driver import Scalar, health_text
from drivers.network.config import Thresholds
from drivers.network.window import Sample, Stats, Window, hard_timeout

State = Literal["unknown", "up", "down"]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a link is in its state: an English template and its parameters, like a driver's health detail, so
    logs and events keep the English sentence and the console translates by template (i18n.py REASONS)."""

    template: str
    params: dict[str, Scalar] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return health_text(self.template, self.params)


def reason(template: str, **params: Scalar) -> Reason:
    """The one way a reason is made: tests/console/test_details.py finds every template by this call."""
    return Reason(template, params)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A state change with the measurement that caused it (goes into events as reason/measured)."""

    subject: str  # link name, or "link/target" for a target
    state: State
    why: Reason
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.why.text


class LinkJudge:
    """Collects one link's samples and decides its state; pure logic, the caller supplies `now`."""

    def __init__(self, name: str, targets: dict[str, tuple[float, float]], thresholds: Thresholds,
                 now: float, sparse_s: float | None = None) -> None:
        """targets maps target label -> (probe interval, probe timeout) in seconds; sparse_s is the interval of
        every target while the link is probed sparsely (a standby), None if it never is."""
        self.name = name
        self.th = thresholds
        self.timeouts = {t: timeout for t, (_, timeout) in targets.items()}
        self.base_intervals = {t: interval for t, (interval, _) in targets.items()}
        self.intervals = dict(self.base_intervals)
        self.sparse_s = sparse_s
        self.sparse = False
        span = max(thresholds.window_s, thresholds.up_after_s, 3 * (sparse_s or 0)) + \
            hard_timeout(max(self.timeouts.values()))
        self.windows = {t: Window(span) for t in targets}
        self.state: State = "unknown"
        self.since = now
        self.started = now
        self.why = reason("starting")
        self.target_state: dict[str, State] = {t: "unknown" for t in targets}

    @property
    def reason(self) -> str:
        """The English line of why the link is in its state, for logs, events and the failover policy."""
        return self.why.text

    def set_sparse(self, sparse: bool) -> None:
        """Judge by the sparse probe rate (recovery then needs its answers over a longer span) or the normal one."""
        self.sparse = sparse and self.sparse_s is not None
        self.intervals = {t: (self.sparse_s if self.sparse and self.sparse_s else i)
                          for t, i in self.base_intervals.items()}

    @property
    def up_span(self) -> float:
        """How far back recovery looks: up_after_s, or three sparse probes per target while sparse."""
        return max(self.th.up_after_s, 3 * self.sparse_s) if self.sparse and self.sparse_s else self.th.up_after_s

    @property
    def majority(self) -> int:
        return len(self.windows) // 2 + 1

    def sent(self, target: str, now: float) -> Sample:
        sample = Sample(target, now, self.timeouts[target])
        self.windows[target].add(sample)
        return sample

    def stats(self, target: str, now: float) -> Stats:
        """Telemetry for one target over window_s."""
        return self.windows[target].stats(now, since=now - self.th.window_s)

    # --- conditions -------------------------------------------------------------------------------

    def outage(self, now: float) -> tuple[Reason, dict[str, Any]] | None:
        merged = sorted((s for w in self.windows.values() for s in w), key=lambda s: s.sent, reverse=True)
        run = 0
        seen: set[str] = set()
        first_lost = now
        for s in merged:
            if s.answered:
                break
            if not s.timed_out(now):
                continue  # still within its timeout: undecided, neither breaks nor extends the run
            run += 1
            seen.add(s.target)
            first_lost = s.sent
        if run >= self.th.down_consecutive and len(seen) >= self.majority:
            return (reason("{lost_in_row} probes in a row unanswered on {targets_silent}/{targets} targets",
                           lost_in_row=run, targets_silent=len(seen), targets=len(self.windows)),
                    {"lost_in_row": run, "targets_silent": len(seen), "targets": len(self.windows),
                     "silent_s": round(now - first_lost, 2)})
        return None

    def degraded(self, now: float) -> tuple[Reason, dict[str, Any]] | None:
        since = max(now - self.th.window_s, self.since if self.state == "up" else float("-inf"))
        bad: dict[str, dict[str, float]] = {}
        for target, w in self.windows.items():
            st = w.stats(now, since=since)
            if st.sent < self.th.min_samples or st.loss_pct is None:
                continue
            if st.loss_pct >= self.th.down_loss_pct:
                bad[target] = {"loss_pct": round(st.loss_pct, 1)}
            elif st.rtt_avg_ms is not None and st.rtt_avg_ms >= self.th.down_rtt_ms:
                bad[target] = {"rtt_avg_ms": round(st.rtt_avg_ms, 1)}
        if len(bad) >= self.majority:
            text = ", ".join(f"{t} " + " ".join(f"{k}={v}" for k, v in m.items()) for t, m in bad.items())
            return (reason("degraded on {bad}/{targets} targets: {measured}", bad=len(bad), targets=len(self.windows),
                           measured=text), {"targets_bad": bad})
        return None

    def _target_healthy(self, target: str, now: float, span: float, min_decided: int) -> dict[str, float] | None:
        decided = [s for s in self.windows[target]
                   if s.sent >= now - span and (s.answered or s.timed_out(now))]
        if len(decided) < min_decided:
            return None
        prompt = [s.rtt * 1000.0 for s in decided if s.prompt() and s.rtt is not None]
        loss = 100.0 * (len(decided) - len(prompt)) / len(decided)
        rtt = sum(prompt) / len(prompt) if prompt else math.inf
        if loss <= self.th.up_loss_pct and rtt <= self.th.up_rtt_ms:
            return {"loss_pct": round(loss, 1), "rtt_avg_ms": round(rtt, 2)}
        return None

    def _needed(self, target: str, span: float) -> int:
        return max(3, int(0.5 * span / self.intervals[target]))

    def healthy(self, now: float) -> tuple[Reason, dict[str, Any]] | None:
        if self.state == "unknown":  # first verdict after start: a few prompt answers are enough
            span = min(self.th.up_after_s, now - self.started)
            needed = {t: 3 for t in self.windows}
        else:
            span = self.up_span
            needed = {t: self._needed(t, span) for t in self.windows}
        good = {t: m for t in self.windows if (m := self._target_healthy(t, now, span, needed[t])) is not None}
        if len(good) >= self.majority:
            worst = max(m["loss_pct"] for m in good.values())
            return (reason("healthy on {good}/{targets} targets over {span_s}s (loss <= {worst_loss_pct}%)",
                           good=len(good), targets=len(self.windows), span_s=round(span), worst_loss_pct=worst),
                    {"targets_good": good})
        return None

    # --- evaluation -------------------------------------------------------------------------------

    def _target_verdicts(self, now: float) -> list[Verdict]:
        out = []
        for target, w in self.windows.items():
            state = self.target_state[target]
            decided = [s for s in w if s.answered or s.timed_out(now)]
            recent = decided[-self.th.down_consecutive:]
            silent = len(recent) == self.th.down_consecutive and all(s.timed_out(now) for s in recent)
            if state != "down" and silent:
                self.target_state[target] = "down"
                out.append(Verdict(f"{self.name}/{target}", "down",
                                   reason("{lost_in_row} probes in a row unanswered", lost_in_row=len(recent)),
                                   {"lost_in_row": len(recent)}))
            elif state != "up":
                m = self._target_healthy(target, now, self.th.up_after_s, 3)
                if m is not None and all(s.prompt() for s in decided[-3:]):
                    self.target_state[target] = "up"
                    out.append(Verdict(f"{self.name}/{target}", "up", reason("answering"), m))
        return out

    def evaluate(self, now: float) -> list[Verdict]:
        """Prune old samples and return target and link state changes, link change last."""
        for w in self.windows.values():
            w.prune(now)
        out = self._target_verdicts(now)
        if self.state != "unknown" and now - self.since < self.th.min_hold_s:
            return out
        if self.state != "down":
            found = self.outage(now) or self.degraded(now)
            if found is None and self.state == "unknown" and now - self.started >= self.th.up_after_s \
                    and self.healthy(now) is None:
                found = (reason("not healthy within {up_after_s}s of start", up_after_s=round(self.th.up_after_s)),
                         {})
            if found is not None:
                return out + [self._change("down", *found, now=now)]
        if self.state != "up":
            found = self.healthy(now)
            if found is not None:
                return out + [self._change("up", *found, now=now)]
        return out

    def _change(self, state: State, why: Reason, measured: dict[str, Any], now: float) -> Verdict:
        measured = dict(measured, previous=self.state, held_s=round(now - self.since, 2))
        self.state, self.since, self.why = state, now, why
        return Verdict(self.name, state, why, measured)
