"""The `email` tool: one message to one recipient over SMTP, on a commercial sender's terms.

- Transport: `smtp://host:587` upgrades with STARTTLS (required) and `smtps://host:465` starts
  in TLS; the certificate is checked against the system's trust store or
  `JUGGERNAUT_SMTP_CA_FILE`. Plaintext is used only with a loopback relay that offers no
  STARTTLS, when `JUGGERNAUT_SMTP_ALLOW_PLAINTEXT_LOOPBACK` allows it, and never with credentials.
- Guard rails: addresses are validated (syntax, no DNS) and every header is refused if it holds
  a line break; the suppression list (`email_suppressions`) is always honoured; at most
  `JUGGERNAUT_EMAIL_DAILY_CAP` messages are sent per UTC day; every message carries
  `List-Unsubscribe` (and RFC 8058 `List-Unsubscribe-Post` when a target is https).
- One message per recipient per task: the `Message-ID` is derived from the task and the address
  and written, with the phase the SMTP transaction reached, to this call's `tool_calls` row
  before anything is sent. A later call for the same recipient of the same task sends nothing
  when an earlier one was accepted (it reports that message), nor when an earlier one lost the
  server's answer after the message itself was sent (the server may have it). Only a call that
  ended before the server accepted DATA is sent again.
- Proof: the exact bytes sent are stored as an `.eml` file under the task's artifacts with
  their sha256, and the 250 reply and its queue id are recorded (`email_message`, checked by
  `verify_email`). Refused recipients are recorded per address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import pydantic
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import Connection

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import EmailSuppression, ToolCall, utcnow
from juggernaut_assets.execution import verify_email
from juggernaut_assets.execution.outcome import Artifact, RetriableError, TaskBlocked, TaskRejected
from juggernaut_assets.execution.tools.base import ToolOutput
from juggernaut_assets.lib.artifact_store import make_dirs
from juggernaut_assets.lib.redaction import redact_text
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.payloads import Payload, PayloadError, validate_payload

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox

EMAIL_TOOL = verify_email.EMAIL_TOOL
NO_SMTP = "no SMTP server is configured (JUGGERNAUT_SMTP_URL)"
MESSAGE_ID_NAMESPACE = uuid.UUID("8e6c04e3-1681-4bc7-a074-8d143905909a")
SEND_LOCK = 0x4A55_4747_4D41_494C
"""PostgreSQL advisory lock held while the day's count is checked and this send reserved."""
DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Line breaks and other control characters (a tab is allowed): refused in every header."""
MESSAGE_POLICY = policy.SMTP.clone(cte_type="7bit")
"""CRLF line endings and a 7-bit body (quoted-printable or base64 when the text needs it)."""
REPLY_CHARS = 300
QUEUE_ID = (
    re.compile(r"queued as\s+<?([^\s<>;,]+)", re.I),
    re.compile(r"\bid=<?([^\s<>;,]+)", re.I),
)
ENHANCED_STATUS = re.compile(r"^\s*\d\.\d{1,3}\.\d{1,3}\s*")
LEADING_OK = re.compile(r"^(ok|queued)\b[:,]?\s*", re.I)


class SendState(StrEnum):
    """Where a send got to; recorded as `state` in the call's `tool_calls` result."""

    SENDING = "sending"
    """Reserved under the daily cap; connecting. Nothing has been sent."""
    DATA = "data"
    """The server accepted DATA and the message is going out: from here it may arrive."""
    ACCEPTED = "accepted"
    ALREADY_SENT = "already_sent"
    REFUSED = "refused"
    SUPPRESSED = "suppressed"
    INVALID = "invalid"
    UNKNOWN = "unknown"
    """The answer to the message was lost: it may have been delivered. Never sent again."""
    FAILED = "failed"
    """Ended before DATA was accepted (connection, 4xx): safe to send again."""


COUNTED_TODAY = frozenset(
    {SendState.SENDING, SendState.DATA, SendState.ACCEPTED, SendState.UNKNOWN}
)
"""What counts against the daily cap: accepted, possibly delivered, and in flight."""
MAY_HAVE_ARRIVED = frozenset({SendState.DATA, SendState.UNKNOWN})


class EmailArgs(Payload):
    """Arguments of an `email` step; unknown ones (a `cc`, a `bcc`) are refused."""

    model_config = pydantic.ConfigDict(extra="forbid")

    to: str = pydantic.Field(min_length=1, max_length=320)
    subject: str = pydantic.Field(min_length=1, max_length=998)
    body: str = pydantic.Field(min_length=1, max_length=100_000)
    name: str | None = pydantic.Field(default=None, max_length=200)
    reply_to: str | None = pydantic.Field(default=None, max_length=320)


@dataclass(frozen=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int

    @property
    def implicit_tls(self) -> bool:
        return self.scheme == "smtps"

    @property
    def loopback(self) -> bool:
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def smtp_target(url: str) -> SmtpTarget:
    """The server of `JUGGERNAUT_SMTP_URL`; ValueError (which never quotes the URL) if unusable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("JUGGERNAUT_SMTP_URL is not a valid URL") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("JUGGERNAUT_SMTP_URL must start with smtp:// (STARTTLS) or smtps://")
    if "@" in parts.netloc:
        raise ValueError(
            "JUGGERNAUT_SMTP_URL must not carry credentials: set JUGGERNAUT_SMTP_USERNAME and "
            "JUGGERNAUT_SMTP_PASSWORD"
        )
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("JUGGERNAUT_SMTP_URL must be smtp://host:port or smtps://host:port")
    return SmtpTarget(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme])


def message_id_for(task_id: str, address: str, domain: str) -> str:
    """The same `Message-ID` for the same recipient of the same task, on every attempt."""
    return f"<{uuid.uuid5(MESSAGE_ID_NAMESPACE, f'{task_id}:{address.lower()}')}@{domain}>"


def queue_id_of(reply: str) -> str | None:
    """The queue id in a 250 reply to the end of DATA (`queued as X`, `id=X`, or what follows
    the status: `OK 1700000000 abc - gsmtp`); None when the reply says only OK."""
    for pattern in QUEUE_ID:
        match = pattern.search(reply)
        if match:
            return match.group(1)
    rest = LEADING_OK.sub("", ENHANCED_STATUS.sub("", reply)).strip()
    return rest[:REPLY_CHARS] or None


def checked_address(text: str) -> str:
    """The address in its ASCII form; ValueError saying why it cannot be mailed."""
    if HEADER_UNSAFE.search(text):
        raise ValueError("it contains a line break or control character")
    try:
        valid = validate_email(text.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return str(valid.ascii_email)


@dataclass(frozen=True)
class SmtpConfig:
    target: SmtpTarget
    sender: Address


def smtp_config(settings: TaskToolsResource) -> SmtpConfig:
    """The server and the sender, or `TaskBlocked` naming the setting that is missing or wrong."""
    if not settings.smtp_url:
        raise TaskBlocked(NO_SMTP)
    try:
        target = smtp_target(settings.smtp_url)
    except ValueError as exc:
        raise TaskBlocked(str(exc)) from None
    if not settings.email_from:
        raise TaskBlocked("no sender address is configured (JUGGERNAUT_EMAIL_FROM)")
    display, address = parseaddr(settings.email_from)
    try:
        if HEADER_UNSAFE.search(settings.email_from):
            raise ValueError("it contains a line break or control character")
        sender = Address(display_name=display, addr_spec=checked_address(address or "-"))
    except ValueError as exc:
        raise TaskBlocked(f"JUGGERNAUT_EMAIL_FROM is not a usable address: {exc}") from None
    if settings.smtp_password and not settings.smtp_username:
        raise TaskBlocked("JUGGERNAUT_SMTP_PASSWORD is set without JUGGERNAUT_SMTP_USERNAME")
    return SmtpConfig(target, sender)


def unsubscribe_targets(settings: TaskToolsResource, sender: str, recipient: str) -> list[str]:
    """`List-Unsubscribe` URIs for this recipient (`{email}` filled in, URL-encoded)."""
    targets = settings.email_unsubscribe or [f"mailto:{sender}?subject=unsubscribe"]
    uris = []
    for target in (t.strip() for t in targets):
        if not target.startswith(("mailto:", "https://")) or re.search(r"[\s<>,\x00-\x1f]", target):
            raise TaskBlocked(
                f"JUGGERNAUT_EMAIL_UNSUBSCRIBE: {target[:80]!r} is not a mailto: or https:// URI"
            )
        uris.append(target.replace("{email}", quote(recipient, safe="")))
    return uris


def build_message(
    *,
    sender: Address,
    to: Address,
    subject: str,
    body: str,
    message_id: str,
    unsubscribe: list[str],
    reply_to: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """The message exactly as it is sent: CRLF lines, ending with CRLF."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = message_id
    if reply_to:
        message["Reply-To"] = reply_to
    message["List-Unsubscribe"] = ", ".join(f"<{uri}>" for uri in unsubscribe)
    if any(uri.startswith("https://") for uri in unsubscribe):
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(body, charset="utf-8")
    raw = message.as_bytes()
    raw = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    if b"\n" in raw.replace(b"\r\n", b"") or b"\r" in raw.replace(b"\r\n", b""):
        raise TaskRejected("email: the message would hold a bare line break")
    return raw


def _args(args: dict[str, Any]) -> EmailArgs:
    try:
        request = validate_payload(EmailArgs, args)
    except PayloadError as exc:
        raise TaskRejected(f"email step: {exc}") from None
    for field in ("subject", "name"):
        if HEADER_UNSAFE.search(getattr(request, field) or ""):
            raise TaskRejected(
                f"email step: {field} contains a line break or control character "
                "(header injection is refused)"
            )
    return request


def email_tool(args: dict[str, Any], box: ToolBox) -> ToolOutput:
    request = _args(args)
    config = smtp_config(box.settings)
    ordinal = box.next_step()
    try:
        address = checked_address(request.to)
    except ValueError as exc:
        shown = request.to[:80]
        return _refused(SendState.INVALID, {"to": shown}, shown, f"not a valid address: {exc}")
    reply_to = None
    if request.reply_to:
        try:
            reply_to = checked_address(request.reply_to)
        except ValueError as exc:
            raise TaskRejected(f"email step: reply_to is not a valid address: {exc}") from None
    domain = config.sender.domain
    message_id = message_id_for(box.task_id, address, domain)
    eml_path = box.artifacts_dir / f"step-{ordinal}" / f"{message_id[1:].split('@')[0]}.eml"
    raw = build_message(
        sender=config.sender,
        to=Address(display_name=request.name or "", addr_spec=address),
        subject=request.subject,
        body=request.body,
        message_id=message_id,
        unsubscribe=unsubscribe_targets(box.settings, config.sender.addr_spec, address),
        reply_to=reply_to,
    )
    base = {
        "message_id": message_id,
        "to": address,
        "server": str(config.target),
        "eml_path": str(eml_path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
    }
    with box.engine.begin() as conn:
        call_id, decided = _reserve(conn, box, base)
    if decided is not None:
        return decided
    make_dirs(eml_path.parent)
    eml_path.write_bytes(raw)
    box.fence()
    return _Transaction(box, call_id, config, {**base, "subject": request.subject}, raw).run()


def _reserve(conn: Connection, box: ToolBox, base: dict[str, Any]) -> tuple[str, ToolOutput | None]:
    """Decide under the send lock: an earlier attempt's answer, a suppression, the daily cap;
    else mark this call `sending` (it then counts against the cap).

    Returns this call's `tool_calls` id (the row the ToolBox opened for it) and the output
    when the message is not to be sent.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SEND_LOCK)))
    tc = ToolCall.__table__
    own = box.current_call_id
    if own is None:
        raise RuntimeError("the email tool runs only through ToolBox.call")
    earlier = _earlier_output(conn, box.task_id, own, base)
    if earlier is not None:
        return own, earlier
    suppressed = conn.execute(
        sa.select(EmailSuppression.reason, EmailSuppression.created_at).where(
            sa.func.lower(EmailSuppression.address) == base["to"].lower()
        )
    ).first()
    if suppressed is not None:
        since = suppressed.created_at.date().isoformat() if suppressed.created_at else "?"
        why = f"suppressed since {since}: {suppressed.reason or 'no reason given'}"
        return own, _refused(SendState.SUPPRESSED, base, base["to"], f"{base['to']} is {why}")
    cap = box.settings.email_daily_cap
    sent = sent_today(conn)
    if sent >= cap:
        raise TaskBlocked(
            f"the daily e-mail cap is reached: {sent} of JUGGERNAUT_EMAIL_DAILY_CAP={cap} "
            "messages sent today (UTC); sending can go on tomorrow, or with a higher cap"
        )
    conn.execute(
        tc.update().where(tc.c.id == own).values(result={**base, "state": SendState.SENDING})
    )
    return own, None


def _earlier_output(
    conn: Connection, task_id: str, own: str, base: dict[str, Any]
) -> ToolOutput | None:
    """What an earlier call for the same message settles: accepted, or possibly delivered."""
    tc = ToolCall.__table__
    rows = conn.execute(
        sa.select(tc.c.id, tc.c.success, tc.c.result)
        .where(tc.c.task_id == task_id, tc.c.tool_name == EMAIL_TOOL, tc.c.id != own)
        .order_by(tc.c.started_at)
    ).all()
    mine = [
        (r.id, r.success, r.result)
        for r in rows
        if isinstance(r.result, dict) and r.result.get("message_id") == base["message_id"]
    ]
    for call_id, success, result in mine:
        if success and result.get("state") == SendState.ACCEPTED:
            return _already_sent(call_id, result)
    for _call_id, _success, result in mine:
        if result.get("state") in MAY_HAVE_ARRIVED:
            why = (
                f"an earlier attempt lost the server's answer after sending "
                f"{result.get('message_id')} to {base['to']}: it may have been delivered, "
                "so it is not sent again (one message per recipient per task)"
            )
            return _refused(SendState.UNKNOWN, base, base["to"], why)
    return None


def sent_today(conn: Connection, now: datetime | None = None) -> int:
    """Messages accepted, possibly delivered or in flight since 00:00 UTC (all tasks)."""
    midnight = (now or utcnow()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    results = conn.execute(
        sa.select(ToolCall.result).where(
            ToolCall.tool_name == EMAIL_TOOL, ToolCall.started_at >= midnight
        )
    ).scalars()
    return sum(1 for r in results if isinstance(r, dict) and r.get("state") in COUNTED_TODAY)


def _refused(state: SendState, base: dict[str, Any], address: str, why: str) -> ToolOutput:
    """A recipient not mailed by this call (no message was written or sent)."""
    kept = {k: v for k, v in base.items() if k not in ("eml_path", "sha256", "bytes")}
    return ToolOutput(
        success=False, result={**kept, "state": state, "refused": {address: why}}, error=why
    )


def _already_sent(call_id: str, result: dict[str, Any]) -> ToolOutput:
    keys = (
        "message_id",
        "to",
        "subject",
        "queue_id",
        "server",
        "eml_path",
        "sha256",
        "bytes",
        "reply_code",
    )
    recorded = {k: result.get(k) for k in keys}
    return ToolOutput(
        success=True,
        result={**recorded, "state": SendState.ALREADY_SENT, "accepted_call": call_id},
        external_id=result.get("queue_id"),
        artifacts=[_artifact(recorded, call_id, already_sent=True)],
    )


def _artifact(result: dict[str, Any], call_id: str | None, already_sent: bool) -> Artifact:
    details = {
        k: result.get(k) for k in ("message_id", "to", "queue_id", "reply_code", "server", "bytes")
    }
    return Artifact(
        kind=ArtifactKind.EMAIL_MESSAGE,
        uri=result.get("eml_path"),
        external_id=call_id,
        sha256=result.get("sha256"),
        details={**details, "subject": result.get("subject"), "already_sent": already_sent},
    )


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:REPLY_CHARS]


class _Transaction:
    """One SMTP session for one message; every ending after DATA is returned, never raised,
    so the call's row always keeps the message's id and state."""

    def __init__(
        self, box: ToolBox, call_id: str, config: SmtpConfig, base: dict[str, Any], raw: bytes
    ) -> None:
        self.box, self.call_id, self.config, self.base, self.raw = box, call_id, config, base, raw
        self.secrets = box.settings.secret_values()
        self.tls = "none"

    def run(self) -> ToolOutput:
        client = self._open()
        try:
            output = self._send(client)
        except BaseException:
            client.close()
            raise
        if output.result.get("state") == SendState.UNKNOWN:
            client.close()
            return output
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
        return output

    def _clean(self, text: str) -> str:
        return redact_text(text, self.secrets)

    def _open(self) -> smtplib.SMTP:
        settings, target = self.box.settings, self.config.target
        context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
        hello = self.config.sender.domain
        timeout = settings.smtp_timeout_seconds
        try:
            if target.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    target.host, target.port, hello, timeout=timeout, context=context
                )
                self.tls = "implicit"
            else:
                client = smtplib.SMTP(target.host, target.port, hello, timeout=timeout)
        except ssl.SSLCertVerificationError as exc:
            raise TaskBlocked(self._untrusted(exc)) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetriableError(self._clean(f"cannot reach {target}: {exc}")) from None
        try:
            self._secure(client, context)
            self._login(client)
        except BaseException:
            client.close()
            raise
        return client

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> str:
        return (
            f"the TLS certificate of {self.config.target} is not trusted "
            f"({exc.verify_message}); set JUGGERNAUT_SMTP_CA_FILE to trust its CA"
        )

    def _secure(self, client: smtplib.SMTP, context: ssl.SSLContext) -> None:
        settings, target = self.box.settings, self.config.target
        try:
            client.ehlo()
            if target.implicit_tls:
                return
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                self.tls = "starttls"
                return
        except ssl.SSLCertVerificationError as exc:
            raise TaskBlocked(self._untrusted(exc)) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetriableError(self._clean(f"TLS with {target} failed: {exc}")) from None
        if not (settings.smtp_allow_plaintext_loopback and target.loopback):
            raise TaskBlocked(
                f"the SMTP server {target} does not offer STARTTLS; mail is not sent "
                "unencrypted (use smtps://, or JUGGERNAUT_SMTP_ALLOW_PLAINTEXT_LOOPBACK for a "
                "relay on a loopback address)"
            )
        if settings.smtp_username:
            raise TaskBlocked(
                f"the SMTP server {target} offers no TLS: credentials are never sent unencrypted"
            )

    def _login(self, client: smtplib.SMTP) -> None:
        settings = self.box.settings
        if not settings.smtp_username:
            return
        try:
            client.login(settings.smtp_username, settings.smtp_password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise TaskBlocked(
                self._clean(
                    f"the SMTP server refused the credentials of JUGGERNAUT_SMTP_USERNAME: "
                    f"{exc.smtp_code} {_text(exc.smtp_error)}"
                )
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise TaskBlocked(
                f"the SMTP server {self.config.target} offers no AUTH, but "
                "JUGGERNAUT_SMTP_USERNAME is set"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetriableError(self._clean(f"SMTP login failed: {exc}")) from None

    def _output(
        self, state: SendState, reply: tuple[int, str] | None, error: str | None = None
    ) -> ToolOutput:
        result: dict[str, Any] = {**self.base, "state": state, "tls": self.tls}
        if reply is not None:
            result["reply_code"], result["reply"] = reply
        if state is SendState.REFUSED:
            result["refused"] = {self.base["to"]: f"{reply[0]} {reply[1]}" if reply else error}
        return ToolOutput(
            success=state is SendState.ACCEPTED,
            result=result,
            error=self._clean(error) if error else None,
            retriable=state is SendState.FAILED,
        )

    def _send(self, client: smtplib.SMTP) -> ToolOutput:
        to, target = self.base["to"], self.config.target
        try:
            options = [f"SIZE={len(self.raw)}"] if client.has_extn("size") else []
            code, text = client.mail(self.config.sender.addr_spec, options)
            if code != 250:
                return self._before_data("the sender", code, _text(text))
            code, text = client.rcpt(to)
            if code not in (250, 251):
                return self._before_data(to, code, _text(text))
            code, text = client.docmd("DATA")
            if code != 354:
                return self._before_data(f"DATA for {to}", code, _text(text))
        except (smtplib.SMTPException, OSError) as exc:
            reason = self._clean(f"{type(exc).__name__}: {exc}")
            return self._output(SendState.FAILED, None, f"{target} before DATA: {reason}")
        self._mark(SendState.DATA)
        try:
            client.send(re.sub(rb"(?m)^\.", b"..", self.raw) + b".\r\n")
            code, text = client.getreply()
        except Exception as exc:
            return self._output(
                SendState.UNKNOWN,
                None,
                f"the connection to {target} was lost after the message to {to} was sent "
                f"({type(exc).__name__}: {exc}); it may have been delivered, so it is not sent "
                f"again: look for Message-ID {self.base['message_id']} in the server's log",
            )
        reply = (code, _text(text))
        if code == 250:
            output = self._output(SendState.ACCEPTED, reply)
            queue_id = queue_id_of(reply[1])
            output.result["queue_id"] = queue_id
            output.external_id = queue_id
            output.artifacts = [_artifact(output.result, None, already_sent=False)]
            return output
        state = SendState.REFUSED if code >= 500 else SendState.FAILED
        return self._output(state, reply, f"{target} answered the message to {to}: {code} {text}")

    def _before_data(self, what: str, code: int, text: str) -> ToolOutput:
        if code >= 500 and what == "the sender":
            raise TaskBlocked(
                self._clean(
                    f"the SMTP server refused the sender {self.config.sender.addr_spec}: "
                    f"{code} {text}"
                )
            )
        state = SendState.REFUSED if code >= 500 else SendState.FAILED
        return self._output(state, (code, text), f"{what} was refused: {code} {text}")

    def _mark(self, state: SendState) -> None:
        """Write the phase to this call's row before the next step of the transaction."""
        tc = ToolCall.__table__
        with self.box.engine.begin() as conn:
            conn.execute(
                tc.update()
                .where(tc.c.id == self.call_id)
                .values(result={**self.base, "state": state, "tls": self.tls})
            )
