"""Verification of `research_report` artifacts: every kept claim is re-checked from disk.

A report checks out when its file holds exactly what its recorded claims, sources and dropped
claims render to, it keeps at least one claim, and each claim's quote is found (after the same
normalisation as when it was kept) in the stored text of the source it cites, a file whose
sha256 is still the one recorded when it was fetched. A page that changed since, or a text file
edited afterwards, cannot make a claim pass: the check is against what was stored, and the
stored file must be unchanged.
"""

from __future__ import annotations

from typing import Any

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.execution.research_sources import FetchedSource
from juggernaut_assets.execution.verify import VerifyEnv, file_sha256, register_verifier
from juggernaut_assets.lib.artifact_store import artifact_path
from juggernaut_assets.lib.claims import (
    Claim,
    DroppedClaim,
    ReportSource,
    SkippedSource,
    claim_problem,
    render_report,
)


def report_details(
    question: str,
    claims: list[Claim],
    sources: list[FetchedSource],
    dropped: list[DroppedClaim],
    skipped: list[SkippedSource],
    model: str,
) -> dict[str, Any]:
    """The report's content as JSON-able artifact details (what the verifier re-checks)."""
    return {
        "question": question,
        "model": model,
        "claims": [{"text": c.text, "source": c.source, "quote": c.quote} for c in claims],
        "sources": [
            {
                "number": s.number,
                "url": s.url,
                "final_url": s.final_url,
                "title": s.title,
                "fetched_at": s.fetched_at,
                "text_path": str(s.text_path),
                "text_sha256": s.text_sha256,
                "raw_path": str(s.raw_path),
                "raw_sha256": s.raw_sha256,
            }
            for s in sources
        ],
        "dropped": [
            {
                "text": d.text,
                "source": d.source,
                "quote": d.quote,
                "reason": d.reason,
                "round": d.round,
            }
            for d in dropped
        ],
        "skipped": [{"url": s.url, "reason": s.reason} for s in skipped],
    }


def report_inputs(details: dict[str, Any]) -> dict[str, Any]:
    """The `render_report` arguments the details hold (KeyError/TypeError when malformed)."""
    return {
        "question": str(details["question"]),
        "claims": [
            Claim(str(c["text"]), int(c["source"]), str(c["quote"])) for c in details["claims"]
        ],
        "sources": [
            ReportSource(
                int(s["number"]),
                str(s["url"]),
                str(s["final_url"]),
                str(s["title"]),
                str(s["fetched_at"]),
                str(s["text_sha256"]),
            )
            for s in details["sources"]
        ],
        "dropped": [
            DroppedClaim(
                str(d["text"]),
                None if d["source"] is None else int(d["source"]),
                str(d["quote"]),
                str(d["reason"]),
                int(d["round"]),
            )
            for d in details["dropped"]
        ],
        "skipped": [SkippedSource(str(s["url"]), str(s["reason"])) for s in details["skipped"]],
        "model": str(details["model"]),
    }


def _source_texts(sources: list[dict[str, Any]]) -> tuple[dict[int, str], str | None]:
    texts: dict[int, str] = {}
    for s in sources:
        path = artifact_path(str(s.get("text_path") or ""))
        if not path.is_file():
            return texts, f"source [{s.get('number')}] text file {path} does not exist"
        actual = file_sha256(path)
        if actual != s.get("text_sha256"):
            return texts, (
                f"source [{s.get('number')}] text file {path} has sha256 {actual[:12]}…, "
                f"recorded {str(s.get('text_sha256'))[:12]}… when it was fetched"
            )
        texts[int(s["number"])] = path.read_text(encoding="utf-8")
    return texts, None


def verify_research_report(artifact: Artifact, _env: VerifyEnv) -> str | None:
    """None when the report file is intact and every claim's quote is in its stored source."""
    if not artifact.uri or not artifact.sha256:
        return "research report names no file or no sha256"
    path = artifact_path(artifact.uri)
    if not path.is_file():
        return f"report file {path} does not exist"
    if file_sha256(path) != artifact.sha256:
        return f"report file {path} is not the one recorded (sha256 differs)"
    try:
        inputs = report_inputs(artifact.details)
    except (KeyError, TypeError, ValueError) as exc:
        return f"research report details are incomplete: {type(exc).__name__}: {exc}"
    if path.read_text(encoding="utf-8") != render_report(**inputs):
        return f"report file {path} does not hold what its recorded claims render to"
    if not inputs["claims"]:
        return "research report keeps no verified claim"
    texts, problem = _source_texts(artifact.details["sources"])
    if problem:
        return problem
    for number, claim in enumerate(inputs["claims"], start=1):
        why = claim_problem(claim, texts)
        if why:
            return f"claim {number} ({claim.text[:60]}): {why}"
    return None


register_verifier(ArtifactKind.RESEARCH_REPORT, verify_research_report)
