"""What to do with a running experiment, from its statistics and its configuration. Pure.

Rules, first match wins:
1. **pause** when the data cannot be trusted: sample-ratio mismatch, a missing control, an
   invalid denominator, no primary metric configured, or no targets for a goal-based experiment;
2. **roll back** when `budget_spent >= budget_limit`, or the failure criteria are met;
3. **conclude** when the success criteria are met; or (A/B) every arm reached the minimum
   sample size and the primary metric's always-valid p-value is below 0.05 (winner: the best
   arm if it beats control, else no winner); or `max_iterations` / `scheduled_end` is reached;
4. **continue** otherwise (the next iteration's task is created from the template).

Criteria use production's form `{"metric": {">=": 0.12}}`; for A/B experiments they are
checked on each non-control arm's mean, for goal-based ones on the metric's overall mean.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from juggernaut_assets.lib.experiments.stats import ALPHA, RowStatus

DEFAULT_MIN_SAMPLE_SIZE = 100
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


class Decision(StrEnum):
    CONTINUE = "continue"
    CONCLUDE = "conclude"
    ROLL_BACK = "roll_back"
    PAUSE = "pause"


@dataclass(frozen=True)
class Arm:
    """One variant's row of the primary metric (from `experiment_metrics`)."""

    variant: str
    is_control: bool
    n: int
    mean: float | None
    lift_rel: float | None = None
    seq_p_value: float | None = None
    status: str = RowStatus.OK
    means: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentState:
    id: str
    config: Mapping[str, Any]
    success_criteria: Mapping[str, Any] | None
    failure_criteria: Mapping[str, Any] | None
    budget_limit: float | None
    budget_spent: float | None
    current_iteration: int
    max_iterations: int | None
    scheduled_end: datetime | None
    arms: list[Arm]
    goal_means: Mapping[str, float | None]
    srm_p_value: float | None = None
    srm_flag: bool = False


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    winner: str | None = None


def criteria_met(
    criteria: Mapping[str, Any] | None, means: Mapping[str, float | None]
) -> str | None:
    """The first satisfied-in-full description, or None. Every listed bound must hold."""
    if not criteria:
        return None
    parts = []
    for metric, bounds in criteria.items():
        value = means.get(metric)
        if value is None or not isinstance(bounds, Mapping):
            return None
        for op, bound in bounds.items():
            check = OPERATORS.get(op)
            if check is None or not check(value, float(bound)):
                return None
            parts.append(f"{metric}={value:.4g} {op} {bound}")
    return ", ".join(parts)


def _pause_reason(state: ExperimentState, goal_based: bool) -> str | None:
    if goal_based:
        if not state.success_criteria and not state.failure_criteria:
            return "goal-based experiment without success_criteria or failure_criteria (no targets)"
        return None
    if not state.config.get("primary_metric"):
        return "config has no primary_metric"
    if state.srm_flag:
        return f"sample ratio mismatch (chi-square p={state.srm_p_value:.2g} < 0.001)"
    broken = {RowStatus.MISSING_CONTROL, RowStatus.INVALID_DENOMINATOR}
    for arm in state.arms:
        if arm.status in broken:
            return f"primary metric unusable for {arm.variant}: {arm.status}"
    if not state.arms:
        return f"no data for primary metric {state.config['primary_metric']}"
    return None


def decide(state: ExperimentState, now: datetime) -> Verdict:
    """The decision for one running experiment (see the module docstring)."""
    goal_based = len(state.arms) <= 1 and not state.config.get("primary_metric")
    reason = _pause_reason(state, goal_based)
    if reason:
        return Verdict(Decision.PAUSE, reason)
    if state.budget_limit is not None and (state.budget_spent or 0) >= state.budget_limit:
        return Verdict(
            Decision.ROLL_BACK,
            f"budget spent {state.budget_spent or 0:g} >= limit {state.budget_limit:g}",
        )
    treatments = [a for a in state.arms if not a.is_control]
    candidates = (
        [(None, state.goal_means)] if goal_based else [(a.variant, a.means) for a in treatments]
    )
    for variant, means in candidates:
        met = criteria_met(state.failure_criteria, means)
        if met:
            where = f" in {variant}" if variant else ""
            return Verdict(Decision.ROLL_BACK, f"failure criteria met{where}: {met}")
    for variant, means in candidates:
        met = criteria_met(state.success_criteria, means)
        if met:
            where = f" in {variant}" if variant else ""
            return Verdict(Decision.CONCLUDE, f"success criteria met{where}: {met}", variant)
    if not goal_based:
        verdict = _ab_verdict(state, treatments)
        if verdict:
            return verdict
    if state.max_iterations is not None and state.current_iteration >= state.max_iterations:
        return Verdict(
            Decision.CONCLUDE, f"max_iterations ({state.max_iterations}) reached, no winner"
        )
    if state.scheduled_end is not None and now >= state.scheduled_end:
        return Verdict(Decision.CONCLUDE, "scheduled_end reached, no winner")
    return Verdict(Decision.CONTINUE, "no decisive result yet")


def _ab_verdict(state: ExperimentState, treatments: list[Arm]) -> Verdict | None:
    minimum = int(state.config.get("min_sample_size") or DEFAULT_MIN_SAMPLE_SIZE)
    if any(a.n < minimum for a in state.arms):
        return None
    decisive = [a for a in treatments if a.seq_p_value is not None and a.seq_p_value < ALPHA]
    if not decisive:
        return None
    best = max(decisive, key=lambda a: a.lift_rel or 0.0)
    if (best.lift_rel or 0) > 0:
        return Verdict(
            Decision.CONCLUDE,
            f"{best.variant} beats control: lift {best.lift_rel:+.2%}, "
            f"always-valid p={best.seq_p_value:.3g}, n>={minimum} per arm",
            best.variant,
        )
    worst = min(decisive, key=lambda a: a.lift_rel or 0.0)
    return Verdict(
        Decision.CONCLUDE,
        f"no winner: {worst.variant} is worse than control (lift {worst.lift_rel:+.2%}, "
        f"always-valid p={worst.seq_p_value:.3g})",
    )
