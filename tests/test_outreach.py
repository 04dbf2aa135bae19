"""`outreach` tasks end to end: the real sensor and executor, the `email` tool, and a real SMTP
server on 127.0.0.1 (aiosmtpd, STARTTLS with a throwaway CA), on SQLite and PostgreSQL.

The template rules get fast unit tests of their own.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import (
    EmailSuppression,
    GovernanceTask,
    TaskArtifact,
    metadata,
    utcnow,
)
from juggernaut_assets.execution import handlers
from juggernaut_assets.execution.handlers.outreach import placeholders, render_messages
from juggernaut_assets.execution.outcome import TaskRejected
from juggernaut_assets.execution.registry import HandlerName, canonical_task_type
from juggernaut_assets.tasks.create import add_task
from juggernaut_assets.tasks.payloads import OutreachPayload
from juggernaut_assets.tasks.settle import retry
from tests.fakes.smtp_server import LocalCertificates, LocalSMTPServer, make_certificates
from tests.queue_driver import drain, task_row
from tests.test_email_tool import PASSWORD, mail_settings

BODY = "Hello {name},\n\n{company} could use {email}'s new domain.\n"


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificates:
    return make_certificates(tmp_path_factory.mktemp("outreach-certs"))


@pytest.fixture
def smtp(certs):
    with LocalSMTPServer(
        tls=certs,
        refuse={"gone@example.com"},
        drop_mid_message={"cut@example.com"},
        drop_at_rcpt={"flaky@example.com"},
        credentials=("outreach-robot", PASSWORD),
    ) as server:
        yield server


def person(email: str, name: str = "Sam", company: str = "Acme") -> dict[str, str]:
    return {"email": email, "name": name, "company": company}


def outreach(*recipients: dict[str, str], body: str = BODY) -> dict:
    return {"recipients": list(recipients), "subject": "A domain for {company}", "body": body}


def add(db, payload: dict) -> str:
    with db.session() as s:
        task, _ = add_task(s, "outreach", payload)
    return task.id


def suppress(db_url: str, address: str, reason: str = "unsubscribed") -> None:
    with make_engine(db_url).begin() as conn:
        conn.execute(sa.insert(EmailSuppression).values(address=address, reason=reason))


def with_mail(resources: dict, smtp: LocalSMTPServer, certs: LocalCertificates, **settings):
    return {**resources, "task_tools": mail_settings(smtp, certs, **settings)}


def artifacts(db, task_id: str) -> list[TaskArtifact]:
    with db.session() as s:
        return list(s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)))


def due_now(db_url: str, task_id: str) -> None:
    """Let a task waiting for its retry backoff be claimed now."""
    with make_engine(db_url).begin() as conn:
        conn.execute(
            sa.update(GovernanceTask)
            .where(GovernanceTask.id == task_id)
            .values(next_retry_at=utcnow() - timedelta(seconds=1))
        )


def test_outreach_runs_on_its_own_handler():
    assert canonical_task_type("outreach") is HandlerName.OUTREACH


def test_templates_take_plain_placeholders_only():
    assert placeholders("Hi {name}, {{literal}} from {company}", "body") == {"name", "company"}
    for bad in ("{name.__class__}", "{name[0]}", "{name!r}", "{name:>30}", "{}", "{0}", "{"):
        with pytest.raises(TaskRejected):
            placeholders(f"Hi {bad}", "body")


def test_every_recipient_must_fill_every_placeholder_and_is_mailed_once():
    payload = OutreachPayload.model_validate(
        outreach(
            person("a@example.com"),
            {"email": "b@example.com", "name": "Bo"},
            {"email": "c@example.com", "company": "Co"},
        )
    )
    with pytest.raises(TaskRejected) as caught:
        render_messages(payload)
    assert "recipient 2 (b@example.com) has no {company}" in str(caught.value)
    assert "recipient 3 (c@example.com) has no {name}" in str(caught.value)
    payload = OutreachPayload.model_validate(
        outreach(person("a@example.com", name="Ann"), person("A@example.com"))
    )
    [message], duplicates = render_messages(payload)
    assert duplicates == ["A@example.com"]
    assert message.subject == "A domain for Acme"
    assert message.body == "Hello Ann,\n\nAcme could use a@example.com's new domain.\n"


def test_outreach_mails_each_recipient_and_lists_those_it_could_not(
    governance_db, db_url, instance, resources, smtp, certs
):
    suppress(db_url, "bob@example.com")
    task_id = add(
        governance_db,
        outreach(
            person("ann@example.com", name="Ann"),
            person("Bob@Example.com", name="Bob"),
            person("gone@example.com"),
            person("not-an-address"),
            person("cat@example.com", name="Cat", company="Catco"),
        ),
    )
    drain(instance, with_mail(resources, smtp, certs))
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("completed", "verified"), row.error_message
    assert sorted(r for m in smtp.received for r in m.rcpt_tos) == [
        "ann@example.com",
        "cat@example.com",
    ]
    summary = row.completion_evidence
    assert "sent 2 of 5 message(s)" in summary
    assert "Bob@Example.com: Bob@example.com is suppressed since" in summary
    assert "gone@example.com: gone@example.com was refused: 550 5.1.1" in summary
    assert "not-an-address: not a valid address" in summary
    [cat] = smtp.to("cat@example.com")
    parsed = message_from_bytes(cat.content, policy=policy.default)
    assert parsed["Subject"] == "A domain for Catco"
    assert parsed.get_content().startswith("Hello Cat,")
    stored = artifacts(governance_db, task_id)
    assert len(stored) == 2 and all(a.verified for a in stored)
    assert {Path(a.uri).read_bytes() for a in stored} == {m.content for m in smtp.received}


def test_a_retry_after_dropped_connections_mails_no_one_twice(
    governance_db, db_url, instance, resources, smtp, certs
):
    recipients = ("ann@example.com", "cut@example.com", "flaky@example.com", "dan@example.com")
    task_id = add(governance_db, outreach(*(person(r) for r in recipients)))
    resources = with_mail(resources, smtp, certs)
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert row.status == "pending" and "before DATA" in row.error_message
    assert [m.rcpt_tos for m in smtp.received] == [["ann@example.com"]]
    assert smtp.cut_off == ["cut@example.com"]
    due_now(db_url, task_id)
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert row.status == "completed", row.error_message
    assert [m.rcpt_tos for m in smtp.received] == [
        ["ann@example.com"],
        ["flaky@example.com"],
        ["dan@example.com"],
    ]
    assert smtp.cut_off == ["cut@example.com"]
    assert "sent 3 of 4" in row.completion_evidence
    assert "cut@example.com: an earlier attempt lost the server's answer" in (
        row.completion_evidence
    )
    assert len(artifacts(governance_db, task_id)) == 3


def test_when_no_recipient_can_be_mailed_the_task_fails_with_every_reason(
    governance_db, db_url, instance, resources, smtp, certs
):
    suppress(db_url, "bob@example.com", "complained")
    task_id = add(
        governance_db,
        outreach(person("bob@example.com"), person("gone@example.com"), person("nobody@")),
    )
    drain(instance, with_mail(resources, smtp, certs))
    row = task_row(db_url, task_id)
    assert row.status == "failed"
    assert "no message was accepted (3 recipient(s))" in row.error_message
    for reason in ("complained", "550 5.1.1", "nobody@: not a valid address"):
        assert reason in row.error_message
    assert smtp.received == []


def test_a_missing_placeholder_fails_the_task_before_anything_is_sent(
    governance_db, db_url, instance, resources, smtp, certs
):
    task_id = add(
        governance_db, outreach(person("ann@example.com"), {"email": "b@example.com", "name": "B"})
    )
    drain(instance, with_mail(resources, smtp, certs))
    row = task_row(db_url, task_id)
    assert row.status == "failed"
    assert "recipient 2 (b@example.com) has no {company}" in row.error_message
    assert smtp.received == []


def test_outreach_without_an_smtp_server_is_blocked(governance_db, db_url, instance, resources):
    task_id = add(governance_db, outreach(person("ann@example.com")))
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert row.status == "blocked"
    assert row.error_message == "no SMTP server is configured (JUGGERNAUT_SMTP_URL)"


def test_the_daily_cap_blocks_outreach_and_a_retry_sends_only_the_rest(
    governance_db, db_url, instance, resources, smtp, certs
):
    task_id = add(governance_db, outreach(person("ann@example.com"), person("bo@example.com")))
    drain(instance, with_mail(resources, smtp, certs, email_daily_cap=1))
    row = task_row(db_url, task_id)
    assert row.status == "blocked"
    assert "the daily e-mail cap is reached: 1 of JUGGERNAUT_EMAIL_DAILY_CAP=1" in (
        row.error_message
    )
    assert [m.rcpt_tos for m in smtp.received] == [["ann@example.com"]]
    retry(make_engine(db_url), task_id)
    drain(instance, with_mail(resources, smtp, certs, email_daily_cap=5))
    row = task_row(db_url, task_id)
    assert row.status == "completed", row.error_message
    assert [m.rcpt_tos for m in smtp.received] == [["ann@example.com"], ["bo@example.com"]]
    assert len(artifacts(governance_db, task_id)) == 2


def test_a_tampered_message_file_keeps_the_task_from_completing(
    governance_db, db_url, instance, resources, smtp, certs, monkeypatch
):
    original = handlers.HANDLERS[HandlerName.OUTREACH]

    def tamper(ctx):
        result = original(ctx)
        path = Path(result.artifacts[0].uri)
        path.write_bytes(path.read_bytes().replace(b"Hello", b"Howdy"))
        return result

    monkeypatch.setitem(handlers.HANDLERS, HandlerName.OUTREACH, tamper)
    task_id = add(governance_db, outreach(person("ann@example.com")))
    drain(instance, with_mail(resources, smtp, certs))
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("pending", "rejected")
    assert "verification failed" in row.error_message and "sha256 of" in row.error_message
    assert len(smtp.received) == 1


def _stored_text(db_url: str) -> str:
    parts = []
    with make_engine(db_url).connect() as conn:
        for table in metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(sa.select(table))]
    return "\n".join(parts)


def test_the_smtp_password_is_never_stored_logged_or_written(
    governance_db, db_url, instance, resources, smtp, certs, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-pa55-1234"
    sent = add(governance_db, outreach(person("ann@example.com"), person("gone@example.com")))
    drain(instance, with_mail(resources, smtp, certs))
    assert task_row(db_url, sent).status == "completed"
    refused = add(governance_db, outreach(person("bo@example.com")))
    drain(instance, with_mail(resources, smtp, certs, smtp_password=wrong))
    row = task_row(db_url, refused)
    assert row.status == "blocked" and "refused the credentials" in row.error_message
    logs = "\n".join(
        repr(record) for run in instance.get_runs() for record in instance.all_logs(run.run_id)
    )
    files = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for secret in (PASSWORD, wrong):
        assert secret not in _stored_text(db_url)
        assert secret not in caplog.text and secret not in logs
        assert not any(secret.encode() in data for data in files)
