"""Model calls made by handlers: budget, `tool_calls` rows and `llm_exchange` artifacts.

Every call is a `tool_calls` row named `llm` (model, round, call number and the caller's own
arguments; tokens, cost, finish reason), and its prompt and answer are files under the task's
artifacts (`llm/call-NN-prompt.json`, `llm/call-NN-answer.md`), returned as `llm_exchange`
artifacts. Before each call the day's (UTC) recorded model cost is summed: at the budget
(`JUGGERNAUT_LLM_DAILY_BUDGET_USD`), the task is blocked. Short transient failures are asked
again in place; longer ones send the task back to the queue.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from upath import UPath

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import ToolCall, new_id, utcnow
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import Artifact, RetriableError, TaskBlocked, TaskRejected
from juggernaut_assets.execution.verify import register_verifier
from juggernaut_assets.execution.verify_llm import LLM_TOOL, verify_llm_exchange
from juggernaut_assets.lib.artifact_store import make_dirs
from juggernaut_assets.lib.redaction import redact_text, scrub_url
from juggernaut_assets.resources.llm import (
    NO_LLM_CONFIGURED,
    ChatResult,
    LlmError,
    LlmMalformedResponse,
    LlmNotAuthorised,
    LlmNotConfigured,
    LlmOutOfCredits,
    LlmRefused,
    LlmResource,
    LlmTransient,
)

EXCHANGE_DIR = "llm"


def require_llm(ctx: TaskContext) -> LlmResource:
    """The task's model, or `TaskBlocked` saying that none is configured."""
    if ctx.llm is None or not ctx.llm.configured:
        raise TaskBlocked(NO_LLM_CONFIGURED)
    return ctx.llm


def spent_today(ctx: TaskContext, now: datetime | None = None) -> float:
    """The model cost counted since 00:00 UTC today (every recorded `llm` call)."""
    now = now or utcnow()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with ctx.engine.connect() as conn:
        results = conn.execute(
            sa.select(ToolCall.result).where(
                ToolCall.tool_name == LLM_TOOL, ToolCall.started_at >= midnight
            )
        ).scalars()
        return sum(
            float(r.get("counted_cost_usd") or 0)
            for r in results
            if isinstance(r, dict) and isinstance(r.get("counted_cost_usd"), int | float)
        )


def check_budget(ctx: TaskContext, llm: LlmResource) -> None:
    """`TaskBlocked` when today's counted model cost has reached the daily budget."""
    spent = spent_today(ctx)
    if spent >= llm.daily_budget_usd:
        raise TaskBlocked(
            f"the LLM daily budget is spent: ${spent:.4f} of ${llm.daily_budget_usd:.2f} "
            "counted today (UTC); generation can go on tomorrow, or with a higher "
            "JUGGERNAUT_LLM_DAILY_BUDGET_USD"
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class LlmCalls:
    """The model calls of one task attempt: numbering, files, rows and artifacts.

    `arguments` are the caller's own fields added to every call's `tool_calls` arguments
    (e.g. the file paths shown to the model); they must hold no secret.
    """

    ctx: TaskContext
    llm: LlmResource
    arguments: dict[str, Any] = field(default_factory=dict)
    calls: int = 0

    def ask(self, messages: list[dict[str, str]], round_no: int) -> tuple[ChatResult, Artifact]:
        """One answer from the model (short transient failures are asked again in place)."""
        attempt = 0
        while True:
            try:
                return self._call(messages, round_no)
            except LlmTransient as exc:
                wait = (
                    exc.retry_after_s
                    if exc.retry_after_s is not None
                    else self.llm.backoff_seconds * 2**attempt
                )
                short = wait <= self.llm.max_inline_wait_seconds
                if attempt < self.llm.max_inline_retries and short:
                    attempt += 1
                    time.sleep(wait)
                    continue
                raise RetriableError(f"{exc}; the task goes back to the queue") from None
            except (LlmNotAuthorised, LlmOutOfCredits, LlmNotConfigured) as exc:
                raise TaskBlocked(str(exc)) from None
            except LlmRefused as exc:
                if exc.status == 404:
                    raise TaskBlocked(
                        f"{exc}: check JUGGERNAUT_LLM_MODEL ({self.llm.model}) and "
                        "JUGGERNAUT_LLM_API_URL"
                    ) from None
                raise TaskRejected(str(exc)) from None
            except LlmMalformedResponse as exc:
                raise RetriableError(str(exc)) from None

    def _files(self) -> tuple[UPath, UPath]:
        self.calls += 1
        folder = self.ctx.artifacts_dir / EXCHANGE_DIR
        make_dirs(folder)
        stem = f"call-{self.calls:02d}"
        return folder / f"{stem}-prompt.json", folder / f"{stem}-answer.md"

    def _call(self, messages: list[dict[str, str]], round_no: int) -> tuple[ChatResult, Artifact]:
        llm = self.llm
        check_budget(self.ctx, llm)
        prompt_path, answer_path = self._files()
        request = {
            "model": llm.model,
            "messages": messages,
            "max_tokens": llm.max_tokens,
            "temperature": llm.temperature,
        }
        prompt_bytes = json.dumps(request, indent=2, ensure_ascii=False).encode()
        prompt_path.write_bytes(prompt_bytes)
        prompt_sha = _sha256(prompt_bytes)
        arguments = {
            "model": llm.model,
            "round": round_no,
            "call": self.calls,
            **self.arguments,
            "api_url": scrub_url(llm.api_url),
            "max_tokens": llm.max_tokens,
            "prompt_file": str(prompt_path),
            "prompt_sha256": prompt_sha,
        }
        self.ctx.tools.fence()
        call_id, started, clock = new_id(), utcnow(), time.perf_counter()
        with self.ctx.engine.begin() as conn:
            conn.execute(
                ToolCall.__table__.insert().values(
                    id=call_id,
                    task_id=self.ctx.task_id,
                    tool_name=LLM_TOOL,
                    arguments=arguments,
                    success=False,
                    started_at=started,
                )
            )
        try:
            result = llm.chat(messages)
        except LlmError as exc:
            self._finish(call_id, clock, None, {"status": exc.status}, str(exc))
            raise
        except Exception as exc:
            self._finish(call_id, clock, None, {}, f"{type(exc).__name__}: {exc}")
            raise
        answer_bytes = result.content.encode()
        answer_path.write_bytes(answer_bytes)
        answer_sha = _sha256(answer_bytes)
        counted = llm.counted_cost(result)
        summary = {
            "model": result.model,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "cost_usd": result.cost_usd,
            "counted_cost_usd": counted,
            "cost_source": "reported" if result.cost_usd is not None else "estimated",
            "finish_reason": result.finish_reason,
            "answer_file": str(answer_path),
            "sha256": answer_sha,
            "bytes": len(answer_bytes),
            "prompt_sha256": prompt_sha,
        }
        self._finish(call_id, clock, result, summary, None)
        artifact = Artifact(
            kind=ArtifactKind.LLM_EXCHANGE,
            uri=str(answer_path),
            external_id=call_id,
            sha256=answer_sha,
            details={
                "round": round_no,
                "model": result.model,
                "prompt_path": str(prompt_path),
                "prompt_sha256": prompt_sha,
                "answer_path": str(answer_path),
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "cost_usd": result.cost_usd,
                "counted_cost_usd": counted,
                "finish_reason": result.finish_reason,
            },
        )
        return result, artifact

    def _finish(
        self,
        call_id: str,
        clock: float,
        result: ChatResult | None,
        summary: dict[str, Any],
        error: str | None,
    ) -> None:
        secrets = [self.llm.api_key] if self.llm.api_key else []
        with self.ctx.engine.begin() as conn:
            conn.execute(
                ToolCall.__table__.update()
                .where(ToolCall.__table__.c.id == call_id)
                .values(
                    success=result is not None,
                    result=summary,
                    external_id=result.response_id if result else None,
                    error_message=redact_text(error, secrets) if error else None,
                    duration_ms=result.duration_ms
                    if result
                    else int((time.perf_counter() - clock) * 1000),
                    completed_at=utcnow(),
                )
            )


register_verifier(ArtifactKind.LLM_EXCHANGE, verify_llm_exchange)
