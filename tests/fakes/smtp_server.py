"""A local SMTP server for the tests: aiosmtpd on 127.0.0.1, speaking real SMTP.

- `refuse`: recipients answered `550 5.1.1` at RCPT.
- `drop_mid_message`: recipients whose message is cut off: the server accepts DATA (354), reads
  the first line of the message and drops the connection without answering.
- `drop_at_rcpt`: recipients whose RCPT is answered by a dropped connection, the first
  `drops` times only (a flaky link), then accepted.
- `tls` with `implicit=False`: STARTTLS offered and required before MAIL; `implicit=True`: TLS
  from the first byte (`smtps://`). Certificates come from `make_certificates` (a throwaway CA).
- `credentials=(user, password)`: AUTH (PLAIN, LOGIN) required, offered only inside TLS.
- `received`: every message whose end of DATA was answered 250, with its exact bytes;
  `cut_off`: the recipients of messages dropped mid-message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import itertools
import logging
import re
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class LocalCertificates:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, signed by it."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> LocalCertificates:
    """Write a CA certificate, and a server certificate and key it signed, to `directory`."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("juggernaut test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(cert.public_bytes(pem))
    (directory / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return LocalCertificates(
        directory / "ca.pem", directory / "server.pem", directory / "server.key"
    )


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    queue_id: str


_ADDRESS = re.compile(r"<([^>]*)>")
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
logging.getLogger("mail.log").setLevel(logging.ERROR)  # the test server's own chatter


class _Session(SMTP):
    """aiosmtpd's SMTP with the failures the tests need (dropped connections)."""

    fake: LocalSMTPServer

    async def smtp_RCPT(self, arg: str) -> None:
        match = _ADDRESS.search(arg or "")
        if match and self.fake.take_drop(match.group(1)):
            assert self.transport is not None
            self.transport.close()
            return
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        cut = [r for r in (envelope.rcpt_tos if envelope else []) if self.fake.cuts(r)]
        if not cut:
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")
        self.fake.cut_off.extend(cut)
        assert self.transport is not None
        self.transport.abort()
        await asyncio.sleep(60)  # cancelled when the connection is lost: no more commands read


class _Controller(Controller):
    def __init__(self, fake: LocalSMTPServer, **kwargs: Any) -> None:
        super().__init__(_Handler(fake), hostname="127.0.0.1", port=0, **kwargs)
        self.fake = fake

    def factory(self) -> SMTP:
        session = _Session(self.handler, loop=self.loop, **self.SMTP_kwargs)
        session.fake = self.fake
        return session

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, fake: LocalSMTPServer) -> None:
        self.fake = fake

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address.lower() in self.fake.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        queue_id = self.fake.next_queue_id()
        self.fake.received.append(
            ReceivedMessage(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or b""),
                queue_id,
            )
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"


@dataclass
class LocalSMTPServer:
    """aiosmtpd on 127.0.0.1 (a free port), in its own thread; see the module docstring."""

    refuse: set[str] = field(default_factory=set)
    drop_mid_message: set[str] = field(default_factory=set)
    drop_at_rcpt: set[str] = field(default_factory=set)
    drops: int = 1
    tls: LocalCertificates | None = None
    implicit: bool = False
    credentials: tuple[str, str] | None = None
    received: list[ReceivedMessage] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.refuse = {a.lower() for a in self.refuse}
        self.drop_mid_message = {a.lower() for a in self.drop_mid_message}
        self._drops_left = {a.lower(): self.drops for a in self.drop_at_rcpt}
        self._lock = threading.Lock()
        self._ids = itertools.count(0x4A1B00)
        kwargs: dict[str, Any] = {"server_hostname": "smtp.test", "ready_timeout": 5.0}
        if self.tls and self.implicit:
            # The session cannot see a TLS socket it did not upgrade: it is TLS from the start.
            kwargs |= {"ssl_context": self.tls.server_context(), "auth_require_tls": False}
        elif self.tls:
            kwargs |= {"tls_context": self.tls.server_context(), "require_starttls": True}
        if self.credentials:
            kwargs |= {"authenticator": self._authenticate, "auth_required": True}
        self._controller = _Controller(self, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.credentials is not None
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    def take_drop(self, address: str) -> bool:
        """Should this RCPT be answered by dropping the connection (once per `drops`)?"""
        with self._lock:
            left = self._drops_left.get(address.lower(), 0)
            if left > 0:
                self._drops_left[address.lower()] = left - 1
            return left > 0

    def cuts(self, address: str) -> bool:
        return address.lower() in self.drop_mid_message

    def next_queue_id(self) -> str:
        return f"{next(self._ids):X}"

    def to(self, address: str) -> list[ReceivedMessage]:
        """The accepted messages with `address` among their recipients."""
        return [m for m in self.received if address.lower() in (r.lower() for r in m.rcpt_tos)]

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def url(self) -> str:
        return f"{'smtps' if self.implicit else 'smtp'}://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalSMTPServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
