"""The `email` tool against a real SMTP server on 127.0.0.1 (aiosmtpd), and the verifier of
`email_message` artifacts.

The tool runs through the real `ToolBox` (so every call is a `tool_calls` row), on SQLite and
PostgreSQL; a workflow step goes through the real sensor and executor (`drain`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import threading
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import (
    EmailSuppression,
    TaskArtifact,
    ToolCall,
    metadata,
    new_id,
    utcnow,
)
from juggernaut_assets.execution.outcome import (
    Artifact,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.tools.email import (
    NO_SMTP,
    message_id_for,
    queue_id_of,
    smtp_target,
)
from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.create import add_task
from tests.fakes.smtp_server import LocalCertificates, LocalSMTPServer, make_certificates
from tests.queue_driver import drain, task_row

USER = "outreach-robot"
PASSWORD = "smtp-pa55-9c1e7b"
SENDER = "Juggernaut Outreach <outreach@example.com>"
REFUSED = "nobody@example.com"
CUT = "cut@example.com"
FLAKY = "flaky@example.com"


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificates:
    return make_certificates(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
def smtp(certs):
    with LocalSMTPServer(
        tls=certs,
        refuse={REFUSED},
        drop_mid_message={CUT},
        drop_at_rcpt={FLAKY},
        credentials=(USER, PASSWORD),
    ) as server:
        yield server


def mail_settings(server: LocalSMTPServer, certs: LocalCertificates, **overrides):
    values = {
        "smtp_url": server.url,
        "smtp_username": USER,
        "smtp_password": PASSWORD,
        "email_from": SENDER,
        "smtp_ca_file": str(certs.ca_file),
        "smtp_timeout_seconds": 5.0,
        **overrides,
    }
    return TaskToolsResource(**values)


def make_box(db_url: str, settings: TaskToolsResource, root: Path, task_id: str | None = None):
    task_id = task_id or new_id()
    return ToolBox(make_engine(db_url), task_id, settings, root / task_id, httpx.Client())


def rows(db_url: str, task_id: str) -> list[sa.Row]:
    with make_engine(db_url).connect() as conn:
        return conn.execute(
            sa.select(ToolCall).where(ToolCall.task_id == task_id).order_by(ToolCall.started_at)
        ).all()


def message(to: str = "alice@example.com", **extra):
    return {"to": to, "subject": "A domain for Acme", "body": "Hello Alice,\n\nhi.\n", **extra}


def stored_text(db_url: str) -> str:
    parts = []
    with make_engine(db_url).connect() as conn:
        for table in metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(sa.select(table))]
    return "\n".join(parts)


def test_message_ids_are_stable_per_task_and_recipient():
    task = new_id()
    same = message_id_for(task, "Alice@Example.com", "example.com")
    assert same == message_id_for(task, "alice@example.com", "example.com")
    assert same != message_id_for(task, "bob@example.com", "example.com")
    assert same != message_id_for(new_id(), "alice@example.com", "example.com")
    assert same.startswith("<") and same.endswith("@example.com>")


@pytest.mark.parametrize(
    ("reply", "queue_id"),
    [
        ("2.0.0 Ok: queued as 4B3F2C0D1E", "4B3F2C0D1E"),
        ("OK id=1rXyZa-0003Kd-2f", "1rXyZa-0003Kd-2f"),
        (
            "2.0.0 OK  1700000000 d9443c01a7336-1e0f5b - gsmtp",
            "1700000000 d9443c01a7336-1e0f5b - gsmtp",
        ),
        ("Ok", None),
        ("2.0.0 OK", None),
    ],
)
def test_the_queue_id_is_read_from_the_250_reply(reply, queue_id):
    assert queue_id_of(reply) == queue_id


def test_smtp_urls_name_a_server_and_never_credentials():
    assert str(smtp_target("smtp://mail.example.com")) == "mail.example.com:587"
    assert smtp_target("smtps://mail.example.com").implicit_tls
    assert str(smtp_target("smtps://mail.example.com:2465")) == "mail.example.com:2465"
    assert smtp_target("smtp://127.0.0.1:2525").loopback
    assert not smtp_target("smtp://mail.example.com").loopback
    for bad in ("http://mail.example.com", "smtp://", "smtp://host/path", "smtp://host:99999"):
        with pytest.raises(ValueError):
            smtp_target(bad)
    with pytest.raises(ValueError, match="must not carry credentials") as caught:
        smtp_target("smtp://robot:hunter2-secret@mail.example.com")
    assert "hunter2-secret" not in str(caught.value)


def test_a_message_is_sent_over_starttls_and_stored_exactly_as_received(
    db_url, smtp, certs, tmp_path
):
    settings = mail_settings(
        smtp,
        certs,
        email_unsubscribe=["mailto:unsubscribe@example.com", "https://example.com/u?e={email}"],
    )
    box = make_box(db_url, settings, tmp_path)
    body = "Hello Alice,\n.a line that starts with a dot\nÀ bientôt\n"
    output = box.call(
        "email",
        message(body=body, name="Alice Martin", reply_to="sales@example.com"),
    )
    [received] = smtp.received
    [artifact] = output.artifacts
    stored = Path(artifact.uri).read_bytes()
    assert received.content == stored
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.mail_from == "outreach@example.com"
    assert smtp.logins == [USER]
    parsed = message_from_bytes(stored, policy=policy.default)
    message_id = message_id_for(box.task_id, "alice@example.com", "example.com")
    assert parsed["Message-ID"] == message_id
    assert parsed["To"] == "Alice Martin <alice@example.com>"
    assert parsed["From"] == SENDER
    assert parsed["Reply-To"] == "sales@example.com"
    assert parsed["List-Unsubscribe"] == (
        "<mailto:unsubscribe@example.com>, <https://example.com/u?e=alice%40example.com>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content().replace("\r\n", "\n") == body
    [call] = rows(db_url, box.task_id)
    assert call.success and call.external_id == received.queue_id
    assert call.result["state"] == "accepted" and call.result["tls"] == "starttls"
    assert (call.result["reply_code"], call.result["queue_id"]) == (250, received.queue_id)
    assert call.result["message_id"] == message_id
    assert artifact.kind is ArtifactKind.EMAIL_MESSAGE and artifact.external_id == call.id
    assert verify_artifacts([artifact], VerifyEnv(make_engine(db_url))) == []


def test_implicit_tls_on_smtps_and_the_default_unsubscribe_target(db_url, certs, tmp_path):
    with LocalSMTPServer(tls=certs, implicit=True) as server:
        settings = mail_settings(server, certs, smtp_username=None, smtp_password=None)
        box = make_box(db_url, settings, tmp_path)
        [artifact] = box.call("email", message()).artifacts
        [received] = server.received
    parsed = message_from_bytes(received.content, policy=policy.default)
    assert parsed["List-Unsubscribe"] == "<mailto:outreach@example.com?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in parsed  # one-click needs an https target (RFC 8058)
    assert rows(db_url, box.task_id)[0].result["tls"] == "implicit"
    assert verify_artifacts([artifact], VerifyEnv(make_engine(db_url))) == []


def test_an_untrusted_certificate_blocks_without_sending(db_url, smtp, certs, tmp_path):
    box = make_box(db_url, mail_settings(smtp, certs, smtp_ca_file=None), tmp_path)
    with pytest.raises(TaskBlocked, match=r"is not trusted.*JUGGERNAUT_SMTP_CA_FILE"):
        box.call("email", message())
    assert smtp.received == [] and smtp.logins == []


def test_plaintext_only_to_a_loopback_relay_when_allowed_and_never_with_credentials(
    db_url, certs, tmp_path
):
    with LocalSMTPServer() as relay:
        plain = mail_settings(relay, certs, smtp_username=None, smtp_password=None)
        with pytest.raises(TaskBlocked, match="does not offer STARTTLS"):
            make_box(db_url, plain, tmp_path).call("email", message())
        allowed = plain.model_copy(update={"smtp_allow_plaintext_loopback": True})
        with_login = mail_settings(relay, certs, smtp_allow_plaintext_loopback=True)
        with pytest.raises(TaskBlocked, match="credentials are never sent unencrypted"):
            make_box(db_url, with_login, tmp_path).call("email", message())
        assert relay.received == []
        box = make_box(db_url, allowed, tmp_path)
        box.call("email", message())
        assert len(relay.received) == 1
        assert rows(db_url, box.task_id)[0].result["tls"] == "none"


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (message(to="not-an-address"), "not a valid address"),
        (message(to="alice@example.com\r\nBcc: victim@example.org"), "line break"),
        (message(to="Alice <alice@example.com>"), "not a valid address"),
        (message(to="josé@example.com"), "not a valid address"),
        (message(subject="Hi\r\nBcc: victim@example.org"), "subject contains a line break"),
        (message(name="Alice\nBcc: victim@example.org"), "name contains a line break"),
        (message(reply_to="x@example.com\nBcc: victim@example.org"), "reply_to is not a valid"),
        (message(bcc="victim@example.org"), "bcc"),
        ({"to": "alice@example.com", "subject": "no body"}, "body"),
    ],
)
def test_bad_addresses_and_header_injection_are_refused(db_url, smtp, certs, tmp_path, args, why):
    box = make_box(db_url, mail_settings(smtp, certs), tmp_path)
    with pytest.raises(TaskRejected, match=why):
        box.call("email", args)
    assert smtp.received == []
    [call] = rows(db_url, box.task_id)
    assert not call.success and call.completed_at is not None


def test_a_suppressed_recipient_is_never_mailed(db_url, smtp, certs, tmp_path):
    with make_engine(db_url).begin() as conn:
        conn.execute(
            sa.insert(EmailSuppression).values(address="bob@example.com", reason="unsubscribed")
        )
    box = make_box(db_url, mail_settings(smtp, certs), tmp_path)
    with pytest.raises(TaskRejected, match=r"suppressed since .*: unsubscribed"):
        box.call("email", message(to="Bob@Example.COM"))
    assert smtp.received == [] and smtp.logins == []
    [call] = rows(db_url, box.task_id)
    assert call.result["state"] == "suppressed"
    assert "unsubscribed" in call.result["refused"]["Bob@example.com"]


def test_a_refused_recipient_is_recorded_per_address_and_not_retried(db_url, smtp, certs, tmp_path):
    box = make_box(db_url, mail_settings(smtp, certs), tmp_path)
    with pytest.raises(TaskRejected, match=r"550 5\.1\.1"):
        box.call("email", message(to=REFUSED))
    [call] = rows(db_url, box.task_id)
    assert call.result["state"] == "refused"
    assert call.result["refused"][REFUSED].startswith("550 5.1.1")
    assert smtp.received == []


def test_a_retry_never_mails_an_accepted_recipient_twice(db_url, smtp, certs, tmp_path):
    settings = mail_settings(smtp, certs)
    first = make_box(db_url, settings, tmp_path)
    [sent] = first.call("email", message()).artifacts
    again = make_box(db_url, settings, tmp_path, task_id=first.task_id)
    [reported] = again.call("email", message(to="ALICE@example.com")).artifacts
    assert len(smtp.received) == 1
    assert (reported.external_id, reported.uri, reported.sha256) == (
        sent.external_id,
        sent.uri,
        sent.sha256,
    )
    assert reported.details["already_sent"] is True
    assert [c.result["state"] for c in rows(db_url, first.task_id)] == [
        "accepted",
        "already_sent",
    ]
    assert verify_artifacts([reported], VerifyEnv(make_engine(db_url))) == []
    make_box(db_url, settings, tmp_path).call("email", message())  # another task: its own
    assert len(smtp.received) == 2


def test_a_message_cut_off_mid_way_is_never_sent_again(db_url, smtp, certs, tmp_path):
    settings = mail_settings(smtp, certs)
    box = make_box(db_url, settings, tmp_path)
    with pytest.raises(TaskRejected, match="may have been delivered"):
        box.call("email", message(to=CUT))
    retry = make_box(db_url, settings, tmp_path, task_id=box.task_id)
    with pytest.raises(TaskRejected, match="earlier attempt lost the server's answer"):
        retry.call("email", message(to=CUT))
    assert smtp.cut_off == [CUT] and smtp.received == []
    assert [c.result["state"] for c in rows(db_url, box.task_id)] == ["unknown", "unknown"]


def test_a_drop_before_data_is_retried_and_then_sent_once(db_url, smtp, certs, tmp_path):
    settings = mail_settings(smtp, certs)
    box = make_box(db_url, settings, tmp_path)
    with pytest.raises(RetriableError, match="before DATA"):
        box.call("email", message(to=FLAKY))
    make_box(db_url, settings, tmp_path, task_id=box.task_id).call("email", message(to=FLAKY))
    assert len(smtp.to(FLAKY)) == 1
    assert [c.result["state"] for c in rows(db_url, box.task_id)] == ["failed", "accepted"]


class Crash(BaseException):
    """The process dies (here: in the middle of sending the message)."""


def test_a_send_that_died_after_data_is_never_repeated(db_url, smtp, certs, tmp_path, monkeypatch):
    settings = mail_settings(smtp, certs)
    box = make_box(db_url, settings, tmp_path)

    def die(self, data):
        if isinstance(data, bytes) and data.endswith(b"\r\n.\r\n"):
            raise Crash()
        return original(self, data)

    original = smtplib.SMTP.send
    monkeypatch.setattr(smtplib.SMTP, "send", die)
    with pytest.raises(Crash):
        box.call("email", message())
    monkeypatch.setattr(smtplib.SMTP, "send", original)
    [dead] = rows(db_url, box.task_id)
    assert dead.result["state"] == "data" and dead.completed_at is None
    with pytest.raises(TaskRejected, match="may have been delivered"):
        make_box(db_url, settings, tmp_path, task_id=box.task_id).call("email", message())
    assert smtp.received == []


def test_the_daily_cap_blocks_sending_and_counts_only_today(db_url, smtp, certs, tmp_path):
    settings = mail_settings(smtp, certs, email_daily_cap=2)
    box = make_box(db_url, settings, tmp_path)
    box.call("email", message(to="a@example.com"))
    box.call("email", message(to="b@example.com"))
    with pytest.raises(TaskBlocked, match="2 of JUGGERNAUT_EMAIL_DAILY_CAP=2 messages sent today"):
        box.call("email", message(to="c@example.com"))
    box.call("email", message(to="a@example.com"))  # already sent: reported, not counted
    assert len(smtp.received) == 2
    with make_engine(db_url).begin() as conn:
        conn.execute(sa.update(ToolCall).values(started_at=utcnow() - timedelta(days=1, minutes=1)))
    box.call("email", message(to="c@example.com"))
    assert len(smtp.received) == 3
    nothing = mail_settings(smtp, certs, email_daily_cap=0)
    with pytest.raises(TaskBlocked, match="JUGGERNAUT_EMAIL_DAILY_CAP=0 messages"):
        make_box(db_url, nothing, tmp_path).call("email", message())


def test_two_senders_racing_for_the_last_message_of_the_day_send_one(db_url, smtp, certs, tmp_path):
    settings = mail_settings(smtp, certs, email_daily_cap=1)
    boxes = [make_box(db_url, settings, tmp_path) for _ in range(2)]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def send(box: ToolBox, to: str) -> None:
        start.wait()
        try:
            box.call("email", message(to=to))
            outcomes.append("sent")
        except TaskBlocked as exc:
            outcomes.append(str(exc))

    threads = [
        threading.Thread(target=send, args=(box, f"racer{n}@example.com"))
        for n, box in enumerate(boxes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 2 and outcomes.count("sent") == 1
    assert any("daily e-mail cap is reached" in outcome for outcome in outcomes)
    assert len(smtp.received) == 1


def test_missing_or_unusable_settings_block_e_mail(db_url, smtp, certs, tmp_path):
    cases = [
        (TaskToolsResource(), re.escape(NO_SMTP)),
        (mail_settings(smtp, certs, email_from=None), "JUGGERNAUT_EMAIL_FROM"),
        (mail_settings(smtp, certs, email_from="nobody"), "JUGGERNAUT_EMAIL_FROM is not"),
        (
            mail_settings(smtp, certs, smtp_url=f"smtp://{USER}:{PASSWORD}@127.0.0.1:1"),
            "must not carry credentials",
        ),
        (mail_settings(smtp, certs, smtp_username=None), "PASSWORD is set without"),
        (mail_settings(smtp, certs, email_unsubscribe=["http://x.example"]), "UNSUBSCRIBE"),
    ]
    for settings, why in cases:
        with pytest.raises(TaskBlocked, match=why):
            make_box(db_url, settings, tmp_path).call("email", message())
    assert smtp.received == []
    assert PASSWORD not in stored_text(db_url)


def test_the_password_never_appears_in_calls_artifacts_files_or_logs(
    db_url, smtp, certs, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    settings = mail_settings(smtp, certs)
    box = make_box(db_url, settings, tmp_path)
    [artifact] = box.call("email", message(body=f"the word {PASSWORD[:5]} is fine\n")).artifacts
    with pytest.raises(TaskRejected):
        box.call("email", message(to=REFUSED))
    wrong = settings.model_copy(update={"smtp_password": "wrong-pa55-0000"})
    with pytest.raises(TaskBlocked, match="refused the credentials"):
        make_box(db_url, wrong, tmp_path).call("email", message())
    assert smtp.logins == [USER, USER]
    assert PASSWORD not in stored_text(db_url) and "wrong-pa55-0000" not in stored_text(db_url)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in caplog.text
    assert Path(artifact.uri).is_file()


def test_the_email_tool_runs_as_a_workflow_step(
    governance_db, db_url, instance, resources, smtp, certs
):
    with governance_db.session() as s:
        task, _ = add_task(s, "workflow", {"steps": [{"tool": "email", "args": message()}]})
    drain(instance, {**resources, "task_tools": mail_settings(smtp, certs)})
    row = task_row(db_url, task.id)
    assert (row.status, row.verification_status) == ("completed", "verified"), row.error_message
    assert len(smtp.received) == 1
    with governance_db.session() as s:
        [artifact] = s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task.id))
        assert artifact.kind == ArtifactKind.EMAIL_MESSAGE and artifact.verified
        assert Path(artifact.uri).read_bytes() == smtp.received[0].content


def _verify(db_url: str, artifact: Artifact) -> str:
    problems = verify_artifacts([artifact], VerifyEnv(make_engine(db_url)))
    assert problems, "the verifier accepted it"
    return problems[0]


def test_the_verifier_rejects_a_tampered_message_and_a_call_that_was_not_accepted(
    db_url, smtp, certs, tmp_path
):
    box = make_box(db_url, mail_settings(smtp, certs), tmp_path)
    [good] = box.call("email", message()).artifacts
    path = Path(good.uri)
    original = path.read_bytes()

    path.write_bytes(original.replace(b"Hello Alice", b"Hello Mallory"))
    assert "sha256 of" in _verify(db_url, good)

    forged = original.replace(good.details["message_id"].encode(), b"<forged@example.com>")
    path.write_bytes(forged)
    assert "recorded a different sha256" in _verify(db_url, replace(good, sha256=_sha(forged)))
    _set_result(db_url, good.external_id, sha256=_sha(forged))
    assert "has Message-ID <forged@example.com>" in _verify(
        db_url, replace(good, sha256=_sha(forged))
    )
    path.write_bytes(original)
    _set_result(db_url, good.external_id, sha256=good.sha256)
    assert verify_artifacts([good], VerifyEnv(make_engine(db_url))) == []

    with pytest.raises(TaskRejected):
        box.call("email", message(to=REFUSED))
    refused_call = rows(db_url, box.task_id)[-1]
    assert "did not succeed" in _verify(db_url, replace(good, external_id=refused_call.id))
    assert "is not recorded" in _verify(db_url, replace(good, external_id=new_id()))
    assert "another file" in _verify(db_url, replace(good, uri=str(tmp_path)))
    _set_result(db_url, good.external_id, queue_id=None)
    assert "carried no queue id" in _verify(db_url, good)


def _set_result(db_url: str, call_id: str, **changes) -> None:
    with make_engine(db_url).begin() as conn:
        result = conn.execute(sa.select(ToolCall.result).where(ToolCall.id == call_id)).scalar()
        conn.execute(
            sa.update(ToolCall).where(ToolCall.id == call_id).values(result={**result, **changes})
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
