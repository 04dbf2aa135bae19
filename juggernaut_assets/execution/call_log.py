"""One `tool_calls` row per external call made outside the ToolBox (GitHub actions of the
pull-request runs): written before the call, finished after it, whatever happened."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from juggernaut_assets.db.models import ToolCall, new_id, utcnow

TC = ToolCall.__table__


@dataclass
class CallRecord:
    """What the caller learnt; stored when the block ends."""

    result: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    success: bool = True
    error: str | None = None
    call_id: str = ""
    """The `tool_calls` row's id (artifacts name the call that produced them)."""


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def recorded_call(
    engine: Engine,
    task_id: str | None,
    tool_name: str,
    arguments: dict[str, Any],
    secrets: Sequence[str] = (),
) -> Iterator[CallRecord]:
    """Record the call in `tool_calls`; an exception marks it failed (and propagates).

    The caller may also set `record.success = False` and `record.error` for an answer that
    is a refusal but not an exception.
    """
    call_id, started, clock = new_id(), utcnow(), time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            TC.insert().values(
                id=call_id,
                task_id=task_id,
                tool_name=tool_name,
                arguments=arguments,
                success=False,
                started_at=started,
            )
        )
    record = CallRecord(call_id=call_id)
    try:
        yield record
    except BaseException as exc:
        record.success = False
        record.error = record.error or f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with engine.begin() as conn:
            conn.execute(
                TC.update()
                .where(TC.c.id == call_id)
                .values(
                    success=record.success,
                    result=record.result,
                    external_id=record.external_id,
                    error_message=_scrub(record.error, secrets) if record.error else None,
                    duration_ms=int((time.perf_counter() - clock) * 1000),
                    completed_at=utcnow(),
                )
            )
