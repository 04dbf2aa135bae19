"""Task payloads: decoding, size limits and per-type schemas (shared/contract.md).

Unknown fields are kept and ignored; missing or malformed fields fail the task with a message
that names them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

import pydantic

MAX_PAYLOAD_BYTES = 1_000_000

M = TypeVar("M", bound="Payload")


class PayloadError(ValueError):
    """The payload cannot be used; the message is meant for a person."""


class Payload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")


class QueryPayload(Payload):
    """`analysis`, `database` (and aliases): one read-only SQL statement."""

    sql: str = pydantic.Field(min_length=1)
    params: dict[str, Any] = pydantic.Field(default_factory=dict)
    max_rows: int = pydantic.Field(default=10_000, ge=1, le=1_000_000)


class ScanPayload(Payload):
    """`scan`: materialise the named asset (optionally one partition)."""

    asset: str = pydantic.Field(min_length=1)
    partition: str | None = None


class DomainAcquisitionPayload(Payload):
    """`domain_acquisition`: buy a domain, never above `max_price_usd`; `evidence` says why.

    With `experiment_id`, the price also counts against that experiment's budget.
    """

    domain: str = pydantic.Field(min_length=3)
    max_price_usd: float = pydantic.Field(gt=0)
    evidence: dict[str, Any] = pydantic.Field(default_factory=dict)
    experiment_id: str | None = None

    @pydantic.field_validator("experiment_id")
    @classmethod
    def _experiment_uuid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an experiment id (a UUID)") from None


class OutreachRecipient(Payload):
    """One recipient; fields beyond `email` and `name` are placeholders too (`{company}`)."""

    email: str = pydantic.Field(min_length=3, max_length=320)
    name: str | None = None


class OutreachPayload(Payload):
    """`outreach`: one templated message to each recipient (`{name}`, `{email}`, …)."""

    recipients: list[OutreachRecipient] = pydantic.Field(min_length=1, max_length=1000)
    subject: str = pydantic.Field(min_length=1, max_length=998)
    body: str = pydantic.Field(min_length=1, max_length=100_000)
    reply_to: str | None = None


class ResearchPayload(Payload):
    """`research`: a question answered from fetched sources, every claim quoted from one.

    Sources are `urls` plus, when a search provider is configured, a web search for the
    question; at most `max_sources` are fetched.
    """

    question: str = pydantic.Field(min_length=3, max_length=2000)
    urls: list[str] = pydantic.Field(default_factory=list, max_length=50)
    max_sources: int = pydantic.Field(default=8, ge=1, le=20)


class WorkflowStep(Payload):
    tool: str = pydantic.Field(min_length=1)
    args: dict[str, Any] = pydantic.Field(default_factory=dict)


class WorkflowPayload(Payload):
    """`workflow`: explicit steps, each a call of a registered tool."""

    steps: list[WorkflowStep]


class FileChange(Payload):
    path: str = pydantic.Field(min_length=1)
    content: str


class CodePayload(Payload):
    """`code` (and aliases): explicit file changes, or an instruction for a generated change."""

    repo: str = pydantic.Field(pattern=r"^[\w.-]+/[\w.-]+$")
    base: str = "main"
    title: str | None = None
    changes: list[FileChange] | None = None
    instruction: str | None = None
    paths: list[str] | None = None
    """For a generated change: the files to show the model (else a search of the tree)."""

    @pydantic.model_validator(mode="after")
    def _changes_or_instruction(self) -> CodePayload:
        if not self.changes and not self.instruction:
            raise ValueError("give either 'changes' (a non-empty list) or 'instruction'")
        return self


def decode_payload(raw: Any) -> dict[str, Any]:
    """The payload as a JSON object, or a `PayloadError` saying what is wrong with it.

    `raw` is the column's value: a decoded JSON value, or the column's JSON text (the executor
    reads payloads as text, so that a row that does not decode fails only its own task). A JSON
    string holding a JSON object (a payload encoded twice, as some writers do) is decoded once
    more; anything else that is not an object is refused.
    """
    if raw is None:
        return {}
    text = raw if isinstance(raw, str) else json.dumps(raw)
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"payload is {size / 1_000_000:.1f} MB, over the "
            f"{MAX_PAYLOAD_BYTES // 1_000_000} MB limit"
        )
    value: Any = raw
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PayloadError(f"payload is not valid JSON: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(value).__name__}")
    return value


def validate_payload(model: type[M], raw: Any) -> M:
    """Decode and validate; errors name every missing or malformed field."""
    data = decode_payload(raw)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise PayloadError(_describe(exc)) from None


def _describe(exc: pydantic.ValidationError) -> str:
    missing = [_loc(e) for e in exc.errors() if e["type"] == "missing"]
    other = [f"{_loc(e)}: {e['msg']}" for e in exc.errors() if e["type"] != "missing"]
    parts = []
    if missing:
        parts.append("payload is missing required field(s): " + ", ".join(missing))
    if other:
        parts.append("invalid payload field(s): " + "; ".join(other))
    return "; ".join(parts)


def _loc(error: Any) -> str:
    return ".".join(str(p) for p in error["loc"]) or "payload"
