"""`research` tasks: a question answered only with claims its fetched sources support.

Sources are the payload's `urls` plus, with `JUGGERNAUT_SEARCH_URL`, a SearXNG search for the
question (`research_sources`). The model sees the question and the extracted texts, numbered
`[1]`, `[2]`, …, and answers in CLAIM/SOURCE/QUOTE blocks (`lib/claims`). A claim is kept only
when its quote is found in the text of the source it cites; the others, and malformed blocks,
are sent back once with the reasons. The report (markdown) keeps the verified claims and says
which were dropped and why; with no verified claim the task fails with those reasons. The
report, the stored sources and the model exchanges are the task's artifacts, and the
`research_report` verifier re-checks every quote against the stored text files.
"""

from __future__ import annotations

import hashlib

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.llm_calls import LlmCalls, require_llm
from juggernaut_assets.execution.outcome import (
    Artifact,
    HandlerResult,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.research_sources import (
    FetchedSource,
    gather_sources,
    search,
)
from juggernaut_assets.execution.verify_research import report_details, report_inputs
from juggernaut_assets.lib.artifact_store import make_dirs
from juggernaut_assets.lib.claims import (
    Claim,
    DroppedClaim,
    SkippedSource,
    claim_problem,
    normalise,
    parse_claims,
    render_report,
)
from juggernaut_assets.lib.redaction import scrub_url
from juggernaut_assets.tasks.payloads import ResearchPayload, validate_payload

REPORT_FILE = "research/report.md"
MAX_ROUNDS = 2
"""The first answer and one reflection on the claims that were dropped."""
NO_SOURCES = (
    "research needs sources: the payload names no 'urls' and no search provider is "
    "configured (JUGGERNAUT_SEARCH_URL)"
)

SYSTEM_PROMPT = """\
You answer a research question using ONLY the numbered source texts you are given. Your \
claims are checked mechanically: each quote is searched for, verbatim, in the text of the \
source it cites, and claims whose quote is not found there are thrown away.

Write each claim as one block, with a blank line between blocks:

CLAIM: <one sentence that answers part of the question>
SOURCE: <the number of the one source that supports it>
QUOTE: <text copied exactly, word for word, from that source, that supports the claim>

Rules:
- Copy each quote exactly from the source text: same words, spelling, punctuation and \
order. Do not paraphrase, shorten with "...", or join passages; quote at least a full phrase.
- Cite only the source the quote comes from, by its number.
- Use only what the sources say, not your own knowledge. If the sources do not answer the \
question, make fewer claims, or none.
- Anything you write outside the blocks is ignored.
"""


def _user_prompt(question: str, sources: list[FetchedSource]) -> str:
    parts = [f"Question: {question.strip()}", "", "Sources:", ""]
    for s in sources:
        cut = " (cut: only the start of the page is shown)" if s.truncated else ""
        parts += [f"[{s.number}] {s.title or s.final_url} <{s.final_url}>{cut}", "<<<"]
        parts += [s.text, ">>>", ""]
    parts.append("Answer the question with CLAIM/SOURCE/QUOTE blocks.")
    return "\n".join(parts)


def _reflection(dropped: list[DroppedClaim], kept: int) -> str:
    lines = [f"{len(dropped)} of your claims could not be verified and were dropped:", ""]
    for d in dropped:
        cited = f" (SOURCE {d.source})" if d.source is not None else ""
        lines.append(f"- {d.text or '(a malformed block)'}{cited}: {d.reason}")
    lines.append("")
    if kept:
        lines.append(f"The other {kept} claim(s) were verified: do not send them again.")
    lines.append(
        "Reply with corrected blocks for the dropped claims only, quoting each source exactly, "
        "or with no blocks if the sources do not support them."
    )
    return "\n".join(lines)


def _check(
    answer: str, texts: dict[int, str], round_no: int, kept: list[Claim]
) -> tuple[list[Claim], list[DroppedClaim]]:
    """The new verified claims of an answer, and the dropped ones with reasons."""
    claims, malformed = parse_claims(answer)
    known = {normalise(c.text).lower() for c in kept}
    verified: list[Claim] = []
    dropped = [
        DroppedClaim("", None, "", f"malformed block: {m.reason}", round_no) for m in malformed
    ]
    for claim in claims:
        problem = claim_problem(claim, texts)
        if problem:
            dropped.append(DroppedClaim(claim.text, claim.source, claim.quote, problem, round_no))
        elif normalise(claim.text).lower() not in known:
            known.add(normalise(claim.text).lower())
            verified.append(claim)
    if not claims and not malformed and not kept:
        dropped.append(DroppedClaim("", None, "", "the answer holds no CLAIM block", round_no))
    return verified, dropped


def _source_urls(
    ctx: TaskContext, payload: ResearchPayload
) -> tuple[list[str], list[SkippedSource]]:
    """The payload's URLs, then search results, at most `max_sources`; a failed search is
    noted (and ends the attempt for a retry only when the payload names no URL)."""
    settings = ctx.tools.settings
    urls = list(payload.urls)
    noted: list[SkippedSource] = []
    if settings.search_url and len(urls) < payload.max_sources:
        try:
            urls += search(ctx, settings, payload.question, payload.max_sources)
        except RetriableError as exc:
            if not urls:
                raise
            noted.append(SkippedSource(scrub_url(settings.search_url), str(exc)))
    return list(dict.fromkeys(urls))[: payload.max_sources], noted


def run_research_task(ctx: TaskContext) -> HandlerResult:
    """Fetch the sources, ask the model, keep the claims whose quotes the sources hold."""
    payload = validate_payload(ResearchPayload, ctx.payload)
    if not payload.urls and not ctx.tools.settings.search_url:
        raise TaskBlocked(NO_SOURCES)
    llm = require_llm(ctx)
    urls, noted = _source_urls(ctx, payload)
    gathered = gather_sources(ctx, ctx.tools.settings, urls)
    gathered.skipped = noted + gathered.skipped
    if not gathered.fetched:
        reasons = "; ".join(f"{s.url}: {s.reason}" for s in gathered.skipped) or "no URL"
        error = RetriableError if gathered.transient else TaskRejected
        raise error(f"no source could be used: {reasons}")
    texts = {s.number: s.text for s in gathered.fetched}
    calls = LlmCalls(ctx, llm, {"sources": [s.final_url for s in gathered.fetched]})
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _user_prompt(payload.question, gathered.fetched)},
    ]
    kept: list[Claim] = []
    dropped: list[DroppedClaim] = []
    exchanges: list[Artifact] = []
    model = llm.model
    for round_no in range(1, MAX_ROUNDS + 1):
        result, exchange = calls.ask(messages, round_no)
        exchanges.append(exchange)
        model = result.model
        verified, failed = _check(result.content, texts, round_no, kept)
        kept += verified
        dropped += failed
        if not failed or round_no == MAX_ROUNDS:
            break
        messages += [
            {"role": "assistant", "content": result.content},
            {"role": "user", "content": _reflection(failed, len(kept))},
        ]
    if not kept:
        reasons = "; ".join(
            f"{d.text or 'block'} [{d.source}]: {d.reason}" if d.source else d.reason
            for d in dropped
        )
        message = (
            f"no claim of the model ({model}) could be verified against its sources: {reasons}"
        )
        raise TaskRejected(message if len(message) <= 4000 else message[:3999] + "…")
    details = report_details(
        payload.question, kept, gathered.fetched, dropped, gathered.skipped, model
    )
    report = render_report(**report_inputs(details))
    path = ctx.artifacts_dir / REPORT_FILE
    make_dirs(path.parent)
    path.write_text(report, encoding="utf-8")
    artifact = Artifact(
        kind=ArtifactKind.RESEARCH_REPORT,
        uri=str(path),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        details=details,
    )
    links = ", ".join(f"[{s.number}] {s.final_url}" for s in gathered.fetched)
    summary = (
        f"research report: {len(kept)} verified claim(s), {len(dropped)} dropped, from "
        f"{len(gathered.fetched)} source(s) ({links})"
    )
    if gathered.skipped:
        summary += f"; {len(gathered.skipped)} source(s) not used"
    return HandlerResult([artifact, *gathered.artifacts, *exchanges], summary)
