"""Verification of artifacts: each kind is checked against the thing it claims exists.

A task becomes `completed` only when it has at least one artifact and every artifact passed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import ToolCall
from juggernaut_assets.execution.github_pr import check_pull_request
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.resources.github import GitHubResource


@dataclass(frozen=True)
class VerifyEnv:
    engine: Engine
    instance: dg.DagsterInstance | None = None
    github: GitHubResource | None = None


Verifier = Callable[[Artifact, VerifyEnv], str | None]
"""Returns None when the artifact checks out, else why it does not."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_file(artifact: Artifact, _env: VerifyEnv) -> str | None:
    if not artifact.uri:
        return "file artifact has no path"
    path = Path(artifact.uri.removeprefix("file://"))
    if not path.is_file():
        return f"file {path} does not exist"
    if not artifact.sha256:
        return "file artifact has no sha256"
    actual = file_sha256(path)
    if actual != artifact.sha256:
        return f"sha256 of {path} is {actual[:12]}…, expected {artifact.sha256[:12]}…"
    return None


def _verify_query_result(artifact: Artifact, env: VerifyEnv) -> str | None:
    if not isinstance(artifact.details.get("row_count"), int):
        return "query result has no row count"
    return _verify_file(artifact, env)


def _verify_tool_call(artifact: Artifact, env: VerifyEnv) -> str | None:
    if not artifact.external_id:
        return "artifact does not name the tool call that produced it"
    with env.engine.connect() as conn:
        call = conn.execute(
            sa.select(ToolCall.success, ToolCall.result).where(ToolCall.id == artifact.external_id)
        ).one_or_none()
    if call is None:
        return f"tool call {artifact.external_id} is not recorded"
    if not call.success:
        return f"tool call {artifact.external_id} did not succeed"
    status = (call.result or {}).get("status_code")
    if status is not None and not 200 <= int(status) < 300:
        return f"the other side answered HTTP {status}"
    return None


def _verify_materialization(artifact: Artifact, env: VerifyEnv) -> str | None:
    if env.instance is None:
        return "no Dagster instance to check the materialization against"
    run_id = artifact.external_id
    asset = artifact.details.get("asset")
    if not run_id or not asset:
        return "materialization artifact needs a run id and an asset"
    records = env.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    keys = {r.dagster_event.asset_key for r in records if r.dagster_event}
    if dg.AssetKey.from_user_string(asset) not in keys:
        return f"run {run_id} has no materialization of {asset}"
    return None


def _verify_pull_request(artifact: Artifact, env: VerifyEnv) -> str | None:
    if env.github is None or not env.github.configured:
        return "no GitHub access to check the pull request against"
    return check_pull_request(env.github.client(), artifact.details)


VERIFIERS: dict[ArtifactKind, Verifier] = {
    ArtifactKind.FILE: _verify_file,
    ArtifactKind.QUERY_RESULT: _verify_query_result,
    ArtifactKind.HTTP_RESPONSE: _verify_tool_call,
    ArtifactKind.MESSAGE: _verify_tool_call,
    ArtifactKind.ASSET_MATERIALIZATION: _verify_materialization,
    ArtifactKind.PULL_REQUEST: _verify_pull_request,
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
        problem = (
            verifier(artifact, env) if verifier else f"no verifier for {artifact.kind} artifacts"
        )
        artifact.verified = problem is None
        artifact.verification_detail = problem or "verified"
        if problem:
            problems.append(f"{artifact.kind} {artifact.uri or artifact.external_id}: {problem}")
    return problems
