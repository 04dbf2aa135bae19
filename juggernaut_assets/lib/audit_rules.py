"""Task-completion audit rules: what is wrong with a task, judged from its row and artifacts.

`artifacts` / `verified_artifacts` count the artifacts of the attempt being judged (the one
that completed a completed task); which rows those are is decided by the loader
(`assets/task_audit.py`), so an earlier attempt's rejected artifact never taints a later
attempt's genuine completion.

Findings, first match wins:
- `completed_without_artifact`: completed, but no artifact recorded (fake success).
- `completed_unverified`: completed, but not every artifact verified, or not marked verified.
- `stuck`: in progress longer than the stuck threshold.
- `no_handler`: its type has no handler (it can never run as it is).
- `blocked_dependency`: blocked because a dependency failed, was cancelled or is missing.
- `blocked`: blocked for another reason (a missing token or service).
- `awaiting_pr_stale`: waiting on its pull request longer than the stale threshold.
- `failed_without_reason`: failed with no error message a person could act on.
- `ok`: none of the above.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


class Finding(StrEnum):
    OK = "ok"
    COMPLETED_WITHOUT_ARTIFACT = "completed_without_artifact"
    COMPLETED_UNVERIFIED = "completed_unverified"
    STUCK = "stuck"
    NO_HANDLER = "no_handler"
    BLOCKED_DEPENDENCY = "blocked_dependency"
    BLOCKED = "blocked"
    AWAITING_PR_STALE = "awaiting_pr_stale"
    FAILED_WITHOUT_REASON = "failed_without_reason"


FAKE_COMPLETIONS = (Finding.COMPLETED_WITHOUT_ARTIFACT, Finding.COMPLETED_UNVERIFIED)
REPORT_ORDER = (*(f for f in Finding if f is not Finding.OK), Finding.OK)
"""How an audit is ordered: problems in the order above (fake completions first), `ok` last."""


def audit_tasks(
    tasks: pl.DataFrame,
    *,
    stuck_after_hours: float = 2.0,
    pr_stale_after_hours: float = 24.0 * 7,
) -> pl.DataFrame:
    """Add `finding` and `detail` to a frame of tasks.

    Expects columns `task_id, task_type, status, attempt_count, artifacts, verified_artifacts,
    verification_status, error_message, has_dependencies, executable, age_hours,
    hours_in_state`.
    """
    completed = pl.col("status") == "completed"
    attempt = pl.col("attempt_count").cast(pl.String).fill_null("?")
    rules: list[tuple[pl.Expr, Finding, pl.Expr]] = [
        (
            completed & (pl.col("artifacts") == 0),
            Finding.COMPLETED_WITHOUT_ARTIFACT,
            pl.format("completed, but no artifact of attempt {} proves any work happened", attempt),
        ),
        (
            completed
            & (
                (pl.col("verified_artifacts") < pl.col("artifacts"))
                | (pl.col("verification_status").fill_null("") != "verified")
            ),
            Finding.COMPLETED_UNVERIFIED,
            pl.format(
                "completed with {}/{} verified artifact(s) of attempt {}, verification_status={}",
                pl.col("verified_artifacts"),
                pl.col("artifacts"),
                attempt,
                pl.col("verification_status").fill_null("null"),
            ),
        ),
        (
            (pl.col("status") == "in_progress") & (pl.col("hours_in_state") > stuck_after_hours),
            Finding.STUCK,
            pl.format("in progress for {} h", pl.col("hours_in_state").round(1)),
        ),
        (
            ~pl.col("executable") & ~pl.col("status").is_in(["completed", "failed", "cancelled"]),
            Finding.NO_HANDLER,
            pl.format("no handler for task type '{}'", pl.col("task_type")),
        ),
        (
            (pl.col("status") == "blocked") & pl.col("has_dependencies"),
            Finding.BLOCKED_DEPENDENCY,
            pl.col("error_message").fill_null("blocked by a dependency"),
        ),
        (
            pl.col("status") == "blocked",
            Finding.BLOCKED,
            pl.col("error_message").fill_null("blocked without a reason"),
        ),
        (
            (pl.col("status") == "awaiting_pr_merge")
            & (pl.col("hours_in_state") > pr_stale_after_hours),
            Finding.AWAITING_PR_STALE,
            pl.format("pull request open for {} h", pl.col("hours_in_state").round(1)),
        ),
        (
            (pl.col("status") == "failed") & pl.col("error_message").fill_null("").eq(""),
            Finding.FAILED_WITHOUT_REASON,
            pl.lit("failed without an error message"),
        ),
    ]
    finding = pl.when(rules[0][0]).then(pl.lit(rules[0][1].value))
    detail = pl.when(rules[0][0]).then(rules[0][2])
    for condition, name, text in rules[1:]:
        finding = finding.when(condition).then(pl.lit(name.value))
        detail = detail.when(condition).then(text)
    return tasks.with_columns(
        finding=finding.otherwise(pl.lit(Finding.OK.value)),
        detail=detail.otherwise(pl.lit("")),
    )
