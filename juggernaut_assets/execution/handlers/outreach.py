"""`outreach`: one templated message to each recipient, sent with the `email` tool.

The subject and body are templates with plain `{name}`-style placeholders, filled from each
recipient's fields (`email`, `name`, and any other field of the recipient); attribute or index
access, conversions and format specs are refused, and a placeholder a recipient lacks fails the
task before anything is sent. Every guard rail is the tool's (suppressions, daily cap, one
message per recipient per task, addresses, headers); a recipient the tool refuses is listed in
the summary and the others are still sent. The task completes when at least one message was
accepted (and every `email_message` verifies); when none was, it fails with every reason.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import HandlerResult, TaskBlocked, TaskRejected
from juggernaut_assets.execution.tools.email import EMAIL_TOOL, NO_SMTP
from juggernaut_assets.tasks.payloads import OutreachPayload, OutreachRecipient, validate_payload

PLACEHOLDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LISTED = 20
"""At most this many refused recipients are named in the summary (all are in `tool_calls`)."""


@dataclass(frozen=True)
class Outgoing:
    email: str
    name: str | None
    subject: str
    body: str


def placeholders(template: str, label: str) -> set[str]:
    """The names a template uses; `TaskRejected` for anything but plain `{name}` fields."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TaskRejected(
            f"outreach {label}: {exc} (write a literal brace as {{{{ or }}}})"
        ) from None
    names = set()
    for _text, field, spec, conversion in fields:
        if field is None:
            continue
        if not PLACEHOLDER.match(field) or spec or conversion:
            shown = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise TaskRejected(
                f"outreach {label}: placeholder {{{shown}}} is not allowed; use plain names "
                "such as {name} or {email}"
            )
        names.add(field)
    return names


def recipient_fields(recipient: OutreachRecipient) -> dict[str, str]:
    """The values a recipient fills in: its non-empty text and number fields."""
    raw = {"email": recipient.email, "name": recipient.name, **(recipient.model_extra or {})}
    return {
        key: str(value).strip()
        for key, value in raw.items()
        if isinstance(value, str | int | float)
        and not isinstance(value, bool)
        and str(value).strip()
    }


def render_messages(payload: OutreachPayload) -> tuple[list[Outgoing], list[str]]:
    """One message per distinct address, and the addresses listed more than once.

    `TaskRejected` names every recipient that lacks a placeholder (up to `LISTED`).
    """
    wanted = placeholders(payload.subject, "subject") | placeholders(payload.body, "body")
    messages: list[Outgoing] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    missing: list[str] = []
    for number, recipient in enumerate(payload.recipients, start=1):
        key = recipient.email.strip().lower()
        if key in seen:
            duplicates.append(recipient.email.strip())
            continue
        seen.add(key)
        values = recipient_fields(recipient)
        lacking = sorted(wanted - values.keys())
        if lacking:
            missing.append(
                f"recipient {number} ({recipient.email.strip()[:80]}) has no "
                + ", ".join(f"{{{name}}}" for name in lacking)
            )
            continue
        messages.append(
            Outgoing(
                email=recipient.email.strip(),
                name=values.get("name"),
                subject=payload.subject.format_map(values),
                body=payload.body.format_map(values),
            )
        )
    if missing:
        more = f" and {len(missing) - LISTED} more" if len(missing) > LISTED else ""
        raise TaskRejected(
            "outreach: the template uses placeholders that recipients lack, nothing was sent: "
            + "; ".join(missing[:LISTED])
            + more
        )
    return messages, duplicates


def _reason(exc: TaskRejected) -> str:
    return str(exc).removeprefix(f"{EMAIL_TOOL} failed: ")


def _listed(items: list[str]) -> str:
    more = f"; and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return "; ".join(items[:LISTED]) + more


def run_outreach_task(ctx: TaskContext) -> HandlerResult:
    payload = validate_payload(OutreachPayload, ctx.payload)
    messages, duplicates = render_messages(payload)
    if not ctx.tools.settings.smtp_url:
        raise TaskBlocked(NO_SMTP)
    artifacts = []
    not_sent: list[str] = []
    for message in messages:
        args = {"to": message.email, "subject": message.subject, "body": message.body}
        if message.name:
            args["name"] = message.name
        if payload.reply_to:
            args["reply_to"] = payload.reply_to
        try:
            output = ctx.tools.call(EMAIL_TOOL, args)
        except TaskRejected as exc:
            not_sent.append(f"{message.email[:80]}: {_reason(exc)}")
            continue
        artifacts.extend(output.artifacts)
    if not artifacts:
        raise TaskRejected(
            f"outreach: no message was accepted ({len(messages)} recipient(s)): "
            + _listed(not_sent)
        )
    summary = f"sent {len(artifacts)} of {len(messages)} message(s), accepted by the SMTP server"
    if not_sent:
        summary += f"; not sent to {len(not_sent)}: {_listed(not_sent)}"
    if duplicates:
        summary += f"; listed more than once (mailed once): {_listed(duplicates)}"
    ctx.log.info("outreach task %s: %s", ctx.task_id, summary)
    return HandlerResult(artifacts=artifacts, summary=summary)
