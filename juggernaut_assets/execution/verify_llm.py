"""Verification of `llm_exchange` artifacts: one model call, its prompt and its answer on disk.

An exchange checks out when the `tool_calls` row it names is a successful `llm` call that
recorded the same answer and prompt digests, and both files still hold exactly those bytes.
It proves what was asked and answered, not that the change is good: a generated change is
done only when its pull request is merged.
"""

from __future__ import annotations

from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.execution.verify import VerifyEnv, _recorded_call, file_sha256
from juggernaut_assets.lib.artifact_store import artifact_path

LLM_TOOL = "llm"


def _file_problem(label: str, path_text: object, wanted: object) -> str | None:
    if not isinstance(path_text, str) or not path_text:
        return f"llm exchange names no {label} file"
    if not isinstance(wanted, str) or not wanted:
        return f"llm exchange has no sha256 for its {label}"
    path = artifact_path(path_text)
    if not path.is_file():
        return f"{label} file {path} does not exist"
    actual = file_sha256(path)
    if actual != wanted:
        return f"sha256 of {label} file {path} is {actual[:12]}…, expected {wanted[:12]}…"
    return None


def verify_llm_exchange(artifact: Artifact, env: VerifyEnv) -> str | None:
    """None when the call is recorded as a success and both files are as it recorded them."""
    problem, result = _recorded_call(artifact, env, LLM_TOOL)
    if problem:
        return problem
    if not artifact.sha256:
        return "llm exchange has no sha256 for its answer"
    details = artifact.details
    if result.get("prompt_sha256") != details.get("prompt_sha256"):
        return f"tool call {artifact.external_id} recorded a different prompt"
    return _file_problem("answer", artifact.uri, artifact.sha256) or _file_problem(
        "prompt", details.get("prompt_path"), details.get("prompt_sha256")
    )
