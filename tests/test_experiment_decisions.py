"""The progression loop: decisions on constructed experiments, and end to end from the DB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pytest
import sqlalchemy as sa

from juggernaut_assets.assets.experiment_progress import experiment_decisions
from juggernaut_assets.assets.experiments import experiment_metrics
from juggernaut_assets.db.models import (
    Experiment,
    ExperimentMetricPoint,
    ExperimentVariant,
    GovernanceTask,
)
from juggernaut_assets.lib.experiments.decisions import Arm, Decision, ExperimentState, decide

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
CONFIG = {"primary_metric": "conversion", "metric_type": "binomial", "min_sample_size": 1000}


def state(arms, **overrides):
    base = dict(
        id="x",
        config=CONFIG,
        success_criteria=None,
        failure_criteria=None,
        budget_limit=None,
        budget_spent=None,
        current_iteration=1,
        max_iterations=10,
        scheduled_end=None,
        arms=arms,
        goal_means={},
    )
    return ExperimentState(**{**base, **overrides})


CONTROL = Arm("control", True, 5000, 0.10, means={"conversion": 0.10})


def treatment(lift, p, n=5000, **kw):
    return Arm(
        "treat", False, n, 0.10 * (1 + lift), lift, p, means={"conversion": 0.10 * (1 + lift)}, **kw
    )


def test_clear_winner_concludes_with_the_winner():
    verdict = decide(state([CONTROL, treatment(0.2, 0.001)]), NOW)
    assert (verdict.decision, verdict.winner) == (Decision.CONCLUDE, "treat")
    assert "treat beats control" in verdict.reason


def test_clear_loser_concludes_without_winner():
    verdict = decide(state([CONTROL, treatment(-0.2, 0.001)]), NOW)
    assert (verdict.decision, verdict.winner) == (Decision.CONCLUDE, None)
    assert verdict.reason.startswith("no winner: treat is worse")


def test_no_difference_continues_until_max_iterations():
    assert decide(state([CONTROL, treatment(0.01, 0.6)]), NOW).decision is Decision.CONTINUE
    done = decide(state([CONTROL, treatment(0.01, 0.6)], current_iteration=10), NOW)
    assert (done.decision, done.reason) == (
        Decision.CONCLUDE,
        "max_iterations (10) reached, no winner",
    )


def test_decisive_but_under_minimum_sample_continues():
    verdict = decide(state([CONTROL, treatment(0.3, 0.001, n=200)]), NOW)
    assert verdict.decision is Decision.CONTINUE


def test_sample_ratio_mismatch_pauses():
    verdict = decide(state([CONTROL, treatment(0.2, 0.001)], srm_flag=True, srm_p_value=1e-6), NOW)
    assert verdict.decision is Decision.PAUSE and "sample ratio mismatch" in verdict.reason


def test_guardrail_breach_rolls_back():
    failure = {"conversion": {"<": 0.09}}
    verdict = decide(state([CONTROL, treatment(-0.2, 0.4)], failure_criteria=failure), NOW)
    assert verdict.decision is Decision.ROLL_BACK
    assert verdict.reason == "failure criteria met in treat: conversion=0.08 < 0.09"


def test_budget_spent_rolls_back():
    verdict = decide(state([CONTROL, treatment(0.0, 0.9)], budget_limit=100, budget_spent=120), NOW)
    assert (verdict.decision, verdict.reason) == (
        Decision.ROLL_BACK,
        "budget spent 120 >= limit 100",
    )


def test_goal_based_experiment_is_judged_by_its_criteria():
    goal = dict(config={}, arms=[], success_criteria={"revenue": {">=": 50}})
    assert decide(state(**goal, goal_means={"revenue": 55.0}), NOW).decision is Decision.CONCLUDE
    assert decide(state(**goal, goal_means={"revenue": 20.0}), NOW).decision is Decision.CONTINUE
    no_targets = decide(state(config={}, arms=[], goal_means={"revenue": 1.0}), NOW)
    assert no_targets.decision is Decision.PAUSE and "no targets" in no_targets.reason


def test_scheduled_end_concludes():
    verdict = decide(
        state([CONTROL, treatment(0.0, 0.9)], scheduled_end=NOW - timedelta(days=1)), NOW
    )
    assert verdict.reason == "scheduled_end reached, no winner"


def _seed(
    db,
    conversions_treat: int,
    template_type: str = "analysis",
    name: str = "checkout button",
    **template: object,
):
    rng = np.random.default_rng(5)
    with db.session() as s:
        exp = Experiment(
            name=name,
            status="running",
            config={
                **CONFIG,
                "min_sample_size": 100,
                "iteration_template": {
                    "task_type": template_type,
                    "payload": {"sql": "SELECT 1"},
                    **template,
                },
            },
            current_iteration=0,
            max_iterations=5,
        )
        s.add(exp)
        s.flush()
        for name, control in (("control", True), ("treat", False)):
            s.add(
                ExperimentVariant(
                    experiment_id=exp.id, name=name, is_control=control, traffic_percentage=50
                )
            )
        for variant, conversions in (("control", 100), ("treat", conversions_treat)):
            values = np.r_[np.ones(conversions), np.zeros(1000 - conversions)]
            rng.shuffle(values)
            s.add_all(
                ExperimentMetricPoint(
                    experiment_id=exp.id,
                    metric_name="conversion",
                    metric_value=float(v),
                    variant=variant,
                    unit_id=f"{variant}-{i}",
                )
                for i, v in enumerate(values)
            )
        s.add(
            ExperimentMetricPoint(
                experiment_id=exp.id, metric_name="conversion", metric_value=1.0, variant="mystery"
            )
        )
    return exp.id


def _materialize(resources, instance, assets=(experiment_metrics, experiment_decisions)):
    return dg.materialize(list(assets), resources=resources, instance=instance)


def test_metric_points_to_a_new_iteration_task_exactly_once(governance_db, instance, resources):
    exp_id = _seed(governance_db, conversions_treat=105)
    result = _materialize(resources, instance)
    metrics = result.asset_value("experiment_metrics")
    assert metrics.filter(metrics["variant"] == "treat")["n"].item() == 1000
    mats = result.asset_materializations_for_node("experiment_metrics")
    assert mats[0].metadata["points_for_unknown_variants"].value == 1
    with governance_db.session() as s:
        exp = s.get(Experiment, exp_id)
        tasks = s.scalars(sa.select(GovernanceTask)).all()
    assert (exp.status, exp.current_iteration) == ("running", 1)
    assert exp.results_summary["decision"] == "continue"
    assert [t.dedupe_key for t in tasks] == [f"experiment:{exp_id}:iteration:1"]
    assert tasks[0].metadata_ == {"experiment_id": exp_id}
    dg.materialize(  # the same metrics again (a retried evaluation): nothing new is written
        [experiment_metrics, experiment_decisions],
        selection=[experiment_decisions],
        resources=resources,
        instance=instance,
    )
    with governance_db.session() as s:
        assert s.get(Experiment, exp_id).current_iteration == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(GovernanceTask)) == 1


def test_metric_points_to_a_concluded_experiment(governance_db, instance, resources):
    exp_id = _seed(governance_db, conversions_treat=200)
    result = _materialize(resources, instance)
    decisions = result.asset_value("experiment_decisions")
    assert decisions["decision"].to_list() == ["conclude"]
    with governance_db.session() as s:
        exp = s.get(Experiment, exp_id)
    assert exp.status == "completed" and exp.end_date is not None
    assert exp.conclusion.startswith("treat beats control")
    assert exp.results_summary["arms"][1]["n"] == 1000


def test_template_without_handler_pauses_instead_of_creating_dead_work(
    governance_db, instance, resources
):
    exp_id = _seed(governance_db, conversions_treat=105, template_type="content_creation")
    _materialize(resources, instance)
    with governance_db.session() as s:
        exp = s.get(Experiment, exp_id)
        assert s.scalar(sa.select(sa.func.count()).select_from(GovernanceTask)) == 0
    assert exp.status == "paused"
    assert exp.results_summary["reason"] == (
        "cannot continue: template task type 'content_creation' has no handler"
    )


def test_a_broken_template_pauses_only_its_experiment(governance_db, instance, resources):
    first = _seed(governance_db, conversions_treat=105, name="first")
    broken = _seed(governance_db, conversions_treat=105, name="broken", priority="urgent")
    last = _seed(governance_db, conversions_treat=105, name="last")
    result = _materialize(resources, instance)
    decisions = result.asset_value("experiment_decisions")
    assert dict(zip(decisions["name"], decisions["decision"], strict=True)) == {
        "first": "continue",
        "broken": "pause",
        "last": "continue",
    }
    with governance_db.session() as s:
        experiments = {e: s.get(Experiment, e) for e in (first, broken, last)}
        dedupe_keys = set(s.scalars(sa.select(GovernanceTask.dedupe_key)))
    assert [(x.status, x.current_iteration) for x in experiments.values()] == [
        ("running", 1),
        ("paused", 0),
        ("running", 1),
    ]
    reason = experiments[broken].results_summary["reason"]
    assert reason.startswith("cannot continue: iteration template: unknown priority 'urgent'; ")
    assert dedupe_keys == {f"experiment:{e}:iteration:1" for e in (first, last)}


def test_a_decision_the_database_refuses_is_rolled_back_and_paused(
    governance_db, db_url, instance, resources
):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite does not enforce varchar lengths")
    exp_id = _seed(governance_db, conversions_treat=105, title="x" * 600)
    _materialize(resources, instance)
    with governance_db.session() as s:
        exp = s.get(Experiment, exp_id)
        assert s.scalar(sa.select(sa.func.count()).select_from(GovernanceTask)) == 0
    assert (exp.status, exp.current_iteration) == ("paused", 0)
    assert exp.results_summary["reason"] == (
        "cannot continue: StringDataRightTruncation: value too long for type character varying(500)"
    )
