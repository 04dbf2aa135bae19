"""Verification of artifacts: each kind is checked against the thing it claims exists.

A task becomes `completed` only when it has at least one artifact and every artifact passed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from upath import UPath

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import ToolCall
from juggernaut_assets.execution.github_merge import check_merge_commit
from juggernaut_assets.execution.github_pr import check_pull_request
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.lib.artifact_store import ArtifactLocationError, artifact_path
from juggernaut_assets.resources.github import GitHubResource


@dataclass(frozen=True)
class VerifyEnv:
    engine: Engine
    instance: dg.DagsterInstance | None = None
    github: GitHubResource | None = None


Verifier = Callable[[Artifact, VerifyEnv], str | None]
"""Returns None when the artifact checks out, else why it does not."""


def file_sha256(path: Path | UPath) -> str:
    """The sha256 of a file, local or in an object store, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_file(artifact: Artifact, _env: VerifyEnv) -> str | None:
    if not artifact.uri:
        return "file artifact has no path"
    path = artifact_path(artifact.uri)
    if not path.is_file():
        return f"file {path} does not exist"
    if not artifact.sha256:
        return "file artifact has no sha256"
    actual = file_sha256(path)
    if actual != artifact.sha256:
        return f"sha256 of {path} is {actual[:12]}…, expected {artifact.sha256[:12]}…"
    return None


def _verify_query_result(artifact: Artifact, env: VerifyEnv) -> str | None:
    """The file checks out, and it holds as many rows as the artifact (and the file) claim."""
    claimed = artifact.details.get("row_count")
    if not isinstance(claimed, int):
        return "query result has no row count"
    problem = _verify_file(artifact, env)
    if problem:
        return problem
    path = artifact_path(str(artifact.uri))
    try:
        body = json.loads(path.read_bytes())
    except ValueError as exc:
        return f"query result {path} is not valid JSON: {exc}"
    rows = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        return f"query result {path} has no rows"
    if body.get("row_count") != claimed or len(rows) != claimed:
        return (
            f"query result claims {claimed} row(s); its file says {body.get('row_count')} "
            f"and holds {len(rows)}"
        )
    return None


def _recorded_call(artifact: Artifact, env: VerifyEnv, tool: str) -> tuple[str | None, dict]:
    """(problem, recorded result) of the tool call an artifact names.

    The call must be recorded, be a call of `tool`, have succeeded, and (when the other side
    answered with a status) have been answered with a 2xx; when the artifact carries a sha256,
    the call must have recorded the same one.
    """
    if not artifact.external_id:
        return "artifact does not name the tool call that produced it", {}
    with env.engine.connect() as conn:
        call = conn.execute(
            sa.select(ToolCall.tool_name, ToolCall.success, ToolCall.result).where(
                ToolCall.id == artifact.external_id
            )
        ).one_or_none()
    if call is None:
        return f"tool call {artifact.external_id} is not recorded", {}
    result = call.result if isinstance(call.result, dict) else {}
    if call.tool_name != tool:
        return f"tool call {artifact.external_id} is a {call.tool_name} call, not {tool}", result
    if not call.success:
        return f"tool call {artifact.external_id} did not succeed", result
    status = result.get("status_code")
    if status is not None and not 200 <= int(status) < 300:
        return f"the other side answered HTTP {status}", result
    if artifact.sha256 and result.get("sha256") != artifact.sha256:
        return f"tool call {artifact.external_id} recorded a different sha256", result
    return None, result


def _verify_tool_call(artifact: Artifact, env: VerifyEnv) -> str | None:
    """A `message`: the slack call it names is recorded, succeeded, and sent this text."""
    problem, _ = _recorded_call(artifact, env, "slack")
    return problem


def _verify_http_response(artifact: Artifact, env: VerifyEnv) -> str | None:
    """An `http_response`: a successful 2xx http call, and its body file as it was received."""
    problem, result = _recorded_call(artifact, env, "http")
    if problem:
        return problem
    if result.get("status_code") is None:
        return f"tool call {artifact.external_id} recorded no HTTP status"
    if not artifact.sha256:
        return "http response artifact has no sha256"
    body_path = artifact.details.get("body_path")
    if not body_path:
        return "http response artifact names no body file"
    path = artifact_path(body_path)
    if not path.is_file():
        return f"body file {path} does not exist"
    size = path.stat().st_size
    if size != artifact.details.get("bytes") or size != result.get("bytes"):
        return f"body file {path} has {size} bytes, the call recorded {result.get('bytes')}"
    actual = file_sha256(path)
    if actual != artifact.sha256:
        return f"sha256 of {path} is {actual[:12]}…, expected {artifact.sha256[:12]}…"
    return None


def _check_failures(
    instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey, partition: str | None
) -> tuple[list[str], list[str]]:
    """(ERROR problems, WARN failures) of the asset checks the run planned for `key`.

    A check that was planned but never evaluated counts as an ERROR problem: its severity is
    unknown, so the materialisation is not shown to have passed it.
    """
    records = instance.all_logs(
        run_id,
        of_type={
            dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        },
    )
    planned: set[str] = set()
    evaluated: set[str] = set()
    errors: list[str] = []
    warnings: list[str] = []
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type is dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
            if event.asset_check_planned_data.asset_key == key:
                planned.add(event.asset_check_planned_data.check_name)
            continue
        check = event.asset_check_evaluation_data
        if check.asset_key != key or check.partition not in (None, partition):
            continue
        evaluated.add(check.check_name)
        if check.passed:
            continue
        why = f"check {check.check_name} failed" + (
            f": {check.description}" if check.description else ""
        )
        if check.severity is dg.AssetCheckSeverity.WARN:
            warnings.append(f"{why} (WARN)")
        else:
            errors.append(f"{why} (ERROR)")
    errors += [
        f"check {name} was planned but never evaluated" for name in sorted(planned - evaluated)
    ]
    return errors, warnings


def _verify_materialization(artifact: Artifact, env: VerifyEnv) -> str | None:
    """The run succeeded, materialised the asset (and partition), and its ERROR checks passed.

    WARN-severity failures do not reject the artifact; they are listed in its `warnings`.
    """
    if env.instance is None:
        return "no Dagster instance to check the materialization against"
    run_id = artifact.external_id
    asset = artifact.details.get("asset")
    partition = artifact.details.get("partition")
    if not run_id or not asset:
        return "materialization artifact needs a run id and an asset"
    run = env.instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} does not exist"
    if run.status is not dg.DagsterRunStatus.SUCCESS:
        return f"run {run_id} is {run.status.value}, not SUCCESS"
    key = dg.AssetKey.from_user_string(asset)
    where = f"{asset} partition {partition}" if partition else asset
    records = env.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    if not any(
        r.dagster_event
        and r.dagster_event.asset_key == key
        and r.dagster_event.partition == partition
        for r in records
    ):
        return f"run {run_id} has no materialization of {where}"
    errors, warnings = _check_failures(env.instance, run_id, key, partition)
    if warnings:
        artifact.details["warnings"] = warnings
    if errors:
        return f"materialization of {where} in run {run_id}: " + "; ".join(errors)
    return None


def _verify_pull_request(artifact: Artifact, env: VerifyEnv) -> str | None:
    if env.github is None or not env.github.configured:
        return "no GitHub access to check the pull request against"
    return check_pull_request(env.github.client(), artifact.details)


def _verify_merge_commit(artifact: Artifact, env: VerifyEnv) -> str | None:
    """A `merge_commit`: the pull request is merged by this commit, which is on its base."""
    if env.github is None or not env.github.configured:
        return "no GitHub access to check the merge against"
    return check_merge_commit(env.github.client(), artifact.details)


VERIFIERS: dict[ArtifactKind, Verifier] = {
    ArtifactKind.FILE: _verify_file,
    ArtifactKind.QUERY_RESULT: _verify_query_result,
    ArtifactKind.HTTP_RESPONSE: _verify_http_response,
    ArtifactKind.MESSAGE: _verify_tool_call,
    ArtifactKind.ASSET_MATERIALIZATION: _verify_materialization,
    ArtifactKind.PULL_REQUEST: _verify_pull_request,
    ArtifactKind.MERGE_COMMIT: _verify_merge_commit,
}


def register_verifier(kind: ArtifactKind, verifier: Verifier) -> None:
    VERIFIERS[kind] = verifier


def verify_artifacts(artifacts: list[Artifact], env: VerifyEnv) -> list[str]:
    """Check every artifact in place; returns the problems (empty when all verified)."""
    if not artifacts:
        return ["the handler produced no artifact (no artifact, no completion)"]
    problems = []
    for artifact in artifacts:
        verifier = VERIFIERS.get(artifact.kind)
        try:
            problem = (
                verifier(artifact, env)
                if verifier
                else f"no verifier for {artifact.kind} artifacts"
            )
        except ArtifactLocationError as exc:
            problem = str(exc)
        artifact.verified = problem is None
        artifact.verification_detail = problem or "verified"
        if problem:
            problems.append(f"{artifact.kind} {artifact.uri or artifact.external_id}: {problem}")
    return problems
