"""`experiment_decisions`: the experiment progression loop, one decision per running experiment
each time `experiment_metrics` is updated: in `experiments_job` (hourly), or after any other
materialisation of `experiment_metrics` by `experiment_decisions_sensor`. Replaces production's
`experiment.progress_stub`.

Each experiment is decided in its own transaction, and its decision is applied inside a
savepoint: an experiment that cannot be evaluated, or whose decision cannot be applied (e.g. an
iteration template with an unknown priority), is paused with the reason and nothing of the
failed decision is kept; the other experiments are decided as usual.
"""

import logging
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from juggernaut_assets.assets.governance import OWNERS
from juggernaut_assets.db.enums import ExperimentStatus
from juggernaut_assets.db.models import Experiment
from juggernaut_assets.execution.registry import is_executable
from juggernaut_assets.lib.experiments.decisions import (
    Arm,
    Decision,
    ExperimentState,
    Verdict,
    decide,
)
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.polars_io import Column, documented_columns, markdown_table
from juggernaut_assets.tasks.create import add_task

log = logging.getLogger(__name__)

E = Experiment.__table__
NOT_DECIDED = "not_decided"
"""`decision` of an experiment whose decision the database refused (decided again next time)."""
ITERATION_TEMPLATE = "iteration template"
ROLLBACK_TEMPLATE = "rollback template"
VERBS = {
    Decision.CONTINUE: "continue",
    Decision.CONCLUDE: "conclude",
    Decision.ROLL_BACK: "roll back",
    Decision.PAUSE: "pause",
}
NEW_STATUS = {
    Decision.CONCLUDE: ExperimentStatus.COMPLETED,
    Decision.ROLL_BACK: ExperimentStatus.ROLLED_BACK,
    Decision.PAUSE: ExperimentStatus.PAUSED,
}
DECISION_COLUMNS: dict[str, Column] = {
    "experiment_id": (pl.String(), "The experiment (experiments.id)."),
    "name": (pl.String(), "Its name."),
    "decision": (
        pl.String(),
        f"{', '.join(Decision)}, or {NOT_DECIDED} (the database refused even the pause: "
        "decided again next time).",
    ),
    "reason": (pl.String(), "Why, in words for a person."),
    "winner": (pl.String(), "The winning variant, when there is one."),
    "task_id": (pl.String(), "The task the decision created (next iteration or roll-back)."),
}


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def experiment_state(row: Any, metrics: pl.DataFrame) -> ExperimentState:
    """Everything `decide` needs about one experiment, from its row and its metrics."""
    config = row.config if isinstance(row.config, dict) else {}
    mine = metrics.filter(pl.col("experiment_id") == str(row.id))
    primary = config.get("primary_metric")
    means: dict[str, dict[str, float | None]] = {}
    for r in mine.filter(pl.col("variant").is_not_null()).iter_rows(named=True):
        means.setdefault(r["variant"], {})[r["metric"]] = r["mean"]
    arms = [
        Arm(
            variant=r["variant"],
            is_control=bool(r["is_control"]),
            n=int(r["n"] or 0),
            mean=r["mean"],
            lift_rel=r["lift_rel"],
            seq_p_value=r["seq_p_value"],
            status=r["status"],
            means=means.get(r["variant"], {}),
        )
        for r in mine.filter(
            (pl.col("metric") == primary) & pl.col("variant").is_not_null()
        ).iter_rows(named=True)
    ]
    goal = mine.filter(pl.col("variant").is_null())
    srm = mine["srm_p_value"].drop_nulls() if "srm_p_value" in mine.columns else pl.Series([])
    return ExperimentState(
        id=str(row.id),
        config=config,
        success_criteria=row.success_criteria,
        failure_criteria=row.failure_criteria,
        budget_limit=row.budget_limit,
        budget_spent=row.budget_spent,
        current_iteration=row.current_iteration or 0,
        max_iterations=row.max_iterations,
        scheduled_end=_as_utc(row.scheduled_end),
        arms=arms,
        goal_means=dict(zip(goal["metric"], goal["mean"], strict=True)),
        srm_p_value=float(srm[0]) if len(srm) else None,
        srm_flag=bool(len(srm) and srm[0] < 0.001),
    )


class TemplateError(ValueError):
    """A config template from which no task can be created; the message names the template."""


def _create_from_template(
    conn: Connection, template: Any, experiment_id: str, key: str, label: str
) -> tuple[str | None, str | None]:
    """A task from a config template; returns (task id, or why none was created).

    Raises `TemplateError` when the template is there but invalid (e.g. an unknown priority).
    """
    if not isinstance(template, dict) or not template.get("task_type"):
        return None, "no template with a task_type in the config"
    task_type = str(template["task_type"])
    if not is_executable(task_type):
        return None, f"template task type '{task_type}' has no handler"
    with sa.orm.Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        try:
            task, _ = add_task(
                session,
                task_type,
                template.get("payload", {}),
                title=template.get("title") or f"experiment {experiment_id}: {key}",
                priority=template.get("priority", "medium"),
                dedupe_key=f"experiment:{experiment_id}:{key}",
                metadata={"experiment_id": experiment_id},
            )
        except ValueError as exc:
            raise TemplateError(f"{label}: {exc}") from exc
        task_id = task.id
        session.commit()  # releases the session's savepoint; the caller's transaction decides
        return task_id, None


def apply_verdict(
    conn: Connection, row: Any, verdict: Verdict, evaluation_key: str, numbers: dict[str, Any]
) -> dict[str, Any]:
    """Write one decision to `experiments` (and its tasks), in the caller's transaction.

    Raises when it cannot (e.g. `TemplateError`); the caller rolls back what was written.
    """
    now = datetime.now(UTC)
    config = row.config if isinstance(row.config, dict) else {}
    decision, reason = verdict.decision, verdict.reason
    values: dict[str, Any] = {"updated_at": now}
    task_id = None
    if decision is Decision.CONTINUE:
        iteration = (row.current_iteration or 0) + 1
        template = config.get("iteration_template")
        task_id, why_not = _create_from_template(
            conn, template, str(row.id), f"iteration:{iteration}", ITERATION_TEMPLATE
        )
        if template and why_not:
            decision, reason = Decision.PAUSE, f"cannot continue: {why_not}"
        else:
            values["current_iteration"] = iteration
            reason = reason + (f"; iteration {iteration} task created" if task_id else "")
    if decision is Decision.ROLL_BACK:
        task_id, _ = _create_from_template(
            conn, config.get("rollback_template"), str(row.id), "rollback", ROLLBACK_TEMPLATE
        )
    if decision in NEW_STATUS:
        values["status"] = NEW_STATUS[decision].value
    if decision in (Decision.CONCLUDE, Decision.ROLL_BACK):
        values |= {"conclusion": reason, "end_date": now}
    summary = {
        "decision": decision.value,
        "reason": reason,
        "winner": verdict.winner,
        "evaluation_key": evaluation_key,
        "evaluated_at": now.isoformat(),
        "task_id": task_id,
        **numbers,
    }
    values["results_summary"] = summary
    conn.execute(E.update().where(E.c.id == row.id).values(**values))
    return summary


def _numbers(state: ExperimentState) -> dict[str, Any]:
    return {
        "arms": [
            {
                "variant": a.variant,
                "n": a.n,
                "mean": a.mean,
                "lift_rel": a.lift_rel,
                "seq_p_value": a.seq_p_value,
                "status": a.status,
            }
            for a in state.arms
        ],
        "goal_means": dict(state.goal_means),
        "srm_p_value": state.srm_p_value,
    }


def _cannot(decision: Decision, exc: Exception) -> str:
    """Why a decision could not be applied, for a person."""
    if isinstance(exc, TemplateError):
        problem = str(exc)
    else:  # the driver's own error, without the SQL statement and its parameters
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        problem = f"{type(cause).__name__}: {str(cause).strip()}"
    return f"cannot {VERBS[decision]}: {problem}"


def _decide_one(
    db: GovernanceDB, experiment_id: Any, metrics: pl.DataFrame, evaluation_key: str, now: datetime
) -> dict[str, Any] | None:
    """Decide for one experiment in its own transaction; None when there is nothing to do."""
    with db.engine.begin() as conn:
        row = conn.execute(sa.select(E).where(E.c.id == experiment_id).with_for_update()).one()
        previous = row.results_summary if isinstance(row.results_summary, dict) else {}
        if row.status != ExperimentStatus.RUNNING.value or (
            previous.get("evaluation_key") == evaluation_key
        ):
            return None
        try:
            state = experiment_state(row, metrics)
            verdict = decide(state, now)
            numbers = _numbers(state)
        except Exception as exc:  # one broken experiment must not stop the others
            verdict = Verdict(Decision.PAUSE, f"could not evaluate: {type(exc).__name__}: {exc}")
            numbers = {}
        try:
            with conn.begin_nested():
                summary = apply_verdict(conn, row, verdict, evaluation_key, numbers)
        except Exception as exc:  # nothing of the failed decision is kept: pause instead
            pause = Verdict(Decision.PAUSE, _cannot(verdict.decision, exc))
            summary = apply_verdict(conn, row, pause, evaluation_key, numbers)
    return {
        "experiment_id": str(experiment_id),
        "name": row.name,
        "decision": summary["decision"],
        "reason": summary["reason"],
        "winner": summary["winner"],
        "task_id": summary["task_id"],
    }


def progress_experiments(
    db: GovernanceDB, metrics: pl.DataFrame, evaluation_key: str
) -> pl.DataFrame:
    """Decide for every running experiment and write each decision once per evaluation key.

    One experiment's failure ends only that experiment (see the module docstring); if the
    database refuses even its pause, nothing of it is written, it is listed as `not_decided`
    and it is decided again at the next evaluation.
    """
    rows = []
    now = datetime.now(UTC)
    with db.engine.connect() as conn:
        ids = (
            conn.execute(
                sa.select(E.c.id)
                .where(E.c.status == ExperimentStatus.RUNNING.value)
                .order_by(E.c.created_at, E.c.id)
            )
            .scalars()
            .all()
        )
    for experiment_id in ids:
        try:
            decided = _decide_one(db, experiment_id, metrics, evaluation_key, now)
        except Exception as exc:
            log.exception("experiment %s: no decision could be written", experiment_id)
            decided = {
                "experiment_id": str(experiment_id),
                "name": None,
                "decision": NOT_DECIDED,
                "reason": f"not decided: {type(exc).__name__}: {exc}",
                "winner": None,
                "task_id": None,
            }
        if decided is not None:
            rows.append(decided)
    schema = {name: dtype for name, (dtype, _) in DECISION_COLUMNS.items()}
    return pl.DataFrame(rows, schema=schema)


@dg.asset(
    group_name="experiments",
    kinds={"polars", "postgres"},
    owners=OWNERS,
    metadata=documented_columns(DECISION_COLUMNS),
)
def experiment_decisions(
    context: dg.AssetExecutionContext,
    governance_db: GovernanceDB,
    experiment_metrics: pl.DataFrame,
) -> dg.MaterializeResult:
    """One decision per running experiment after each `experiment_metrics` update:
    `continue` (next iteration task from `config.iteration_template`, `current_iteration + 1`),
    `conclude` (→ `completed` with `conclusion` and `results_summary`), `roll_back`
    (→ `rolled_back`, tasks from `config.rollback_template`) or `pause` (sample-ratio
    mismatch or broken data, with the reason). An experiment whose decision cannot be applied
    (e.g. an iteration template with an unknown priority) is paused with "cannot continue:
    ..." and nothing of that decision is written; the others are decided as usual.

    Each decision is written to `experiments` exactly once per `experiment_metrics` materialisation
    (its id is the evaluation key in `results_summary`), so a retried run writes nothing twice.
    """
    records = context.instance.fetch_materializations(
        dg.AssetKey("experiment_metrics"), limit=1
    ).records
    key = f"experiment_metrics:{records[0].storage_id if records else context.run.run_id}"
    decisions = progress_experiments(governance_db, experiment_metrics, key)
    counts = dict(decisions.group_by("decision").len().iter_rows()) if decisions.height else {}
    return dg.MaterializeResult(
        value=decisions,
        metadata={
            "evaluation_key": key,
            **{f"decision/{d}": int(n) for d, n in sorted(counts.items())},
            "decisions": dg.MetadataValue.md(markdown_table(decisions)),
        },
    )


experiments_job = dg.define_asset_job(
    "experiments_job",
    selection=dg.AssetSelection.assets("experiment_metrics", "experiment_decisions"),
    description="Recompute experiment metrics, then decide for every running experiment.",
)

experiments_schedule = dg.ScheduleDefinition(
    job=experiments_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: metrics, then one decision per running experiment.",
)

EXPERIMENT_METRICS = dg.AssetKey("experiment_metrics")
EXPERIMENT_DECISIONS = dg.AssetKey("experiment_decisions")
DECISIONS_TRIGGER_TAG = "juggernaut/trigger"


def decided_in_run(run: dg.DagsterRun | None) -> bool:
    """Whether the run that materialised `experiment_metrics` also ran `experiment_decisions`."""
    if run is None:
        return False
    if run.job_name == experiments_job.name:
        return True
    return bool(run.asset_selection and EXPERIMENT_DECISIONS in run.asset_selection)


@dg.asset_sensor(
    asset_key=EXPERIMENT_METRICS,
    job=experiments_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After experiment_metrics is materialised outside experiments_job (a scan task, the "
        "UI), decides the running experiments from it: one experiment_decisions run per "
        "materialisation."
    ),
)
def experiment_decisions_sensor(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest | dg.SkipReason:
    run_id = asset_event.run_id
    if decided_in_run(context.instance.get_run_by_id(run_id)):
        return dg.SkipReason(f"run {run_id[:8]} decided the experiments with these metrics")
    return dg.RunRequest(
        run_key=f"experiment_metrics:{run_id}",
        asset_selection=[EXPERIMENT_DECISIONS],
        tags={DECISIONS_TRIGGER_TAG: f"experiment_metrics run {run_id[:8]}"},
    )
