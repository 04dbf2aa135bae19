"""Settings of the tools that workflow tasks call (http, database, slack, email)."""

from __future__ import annotations

import json
import os

import dagster as dg
import pydantic

from juggernaut_assets.lib.netguard import HostAllowList

CREDENTIALS_ENV = "JUGGERNAUT_HTTP_CREDENTIALS"
MAX_BODY_ENV = "JUGGERNAUT_HTTP_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_EMAIL_DAILY_CAP = 50


class CredentialError(ValueError):
    """`JUGGERNAUT_HTTP_CREDENTIALS` cannot be used; the message names the problem."""


class HttpCredential(pydantic.BaseModel):
    """One named credential: which environment variable holds the secret, where it may go.

    The header sent is `{header}: {scheme} {value}` (or `{header}: {value}` without a scheme).
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    env: str = pydantic.Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    hosts: list[str] = pydantic.Field(min_length=1)
    header: str = pydantic.Field(default="Authorization", pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    scheme: str | None = pydantic.Field(default=None, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

    def sent_to(self, host: str, port: int) -> bool:
        """May this credential be sent to `host:port`? (`hosts` entries as in the allowlist.)"""
        return HostAllowList(tuple(self.hosts)).permits(host, port)

    def header_value(self, secret: str) -> str:
        return f"{self.scheme} {secret}" if self.scheme else secret


def parse_credentials(text: str | None) -> dict[str, HttpCredential]:
    """The named credentials of `JUGGERNAUT_HTTP_CREDENTIALS` (JSON), validated."""
    if not text or not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialError(f"{CREDENTIALS_ENV} is not valid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise CredentialError(f"{CREDENTIALS_ENV} must be a JSON object of named credentials")
    try:
        return {str(name): HttpCredential.model_validate(spec) for name, spec in raw.items()}
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'credential'}: {e['msg']}"
            for e in exc.errors()
        )
        raise CredentialError(f"{CREDENTIALS_ENV} is not valid: {problems}") from None


class TaskToolsResource(dg.ConfigurableResource):
    """Policy and credentials for task tools.

    - `slack_webhook_url`: Slack incoming-webhook URL, bound from `SLACK_WEBHOOK_URL`; without
      it, a `slack` step blocks its task with a clear reason. It is a secret: never logged,
      never stored in `tool_calls` or metadata.
    - `http_allowed_hosts`: hosts the `http` tool may call (`*.example.com` matches
      subdomains, `host:port` one port); empty means any public host. Requests to other hosts
      fail the task. Loopback, private, link-local, multicast and reserved addresses are refused
      after DNS resolution, on every redirect hop, unless the exact `host[:port]` is listed.
    - `http_credentials`: JSON text of named credentials (`JUGGERNAUT_HTTP_CREDENTIALS`):
      `{"name": {"env": "VAR", "hosts": [...], "header": "Authorization", "scheme": "Bearer"}}`.
      The secret itself stays in the environment variable and is read at call time.
    - `http_max_body_bytes`: the most of a response body the `http` tool reads (default 10 MiB).
    - `http_timeout_seconds`: per request.
    - `search_url`: base URL of a SearXNG instance (`JUGGERNAUT_SEARCH_URL`) that `research`
      tasks query (`GET {search_url}/search?q=…&format=json`) for sources; none: research uses
      only the URLs its payload names.

    E-mail (the `email` tool and `outreach` tasks; without `smtp_url` they are blocked):
    - `smtp_url`: `smtp://host:587` (STARTTLS, required) or `smtps://host:465` (implicit TLS),
      from `JUGGERNAUT_SMTP_URL`; it may not carry credentials.
    - `smtp_username`, `smtp_password`: `JUGGERNAUT_SMTP_USERNAME`, `JUGGERNAUT_SMTP_PASSWORD`
      (a secret: bound with `dg.EnvVar`, sent only inside TLS, never logged or stored).
    - `email_from`: the sender, `JUGGERNAUT_EMAIL_FROM` (`Name <address>` or an address).
    - `email_daily_cap`: the most messages accepted per UTC day, `JUGGERNAUT_EMAIL_DAILY_CAP`
      (default 50; 0 sends nothing). Over it, e-mail work is blocked until the next day.
    - `email_unsubscribe`: `List-Unsubscribe` targets, `JUGGERNAUT_EMAIL_UNSUBSCRIBE`
      (comma-separated `mailto:` and `https://` URIs; `{email}` is replaced by the recipient's
      address, URL-encoded). An https target also adds RFC 8058 one-click unsubscription.
      Default: `mailto:` the sender with the subject "unsubscribe".
    - `smtp_ca_file`: a CA bundle to trust for the server's certificate,
      `JUGGERNAUT_SMTP_CA_FILE` (default: the system's trust store).
    - `smtp_allow_plaintext_loopback`: `JUGGERNAUT_SMTP_ALLOW_PLAINTEXT_LOOPBACK`; lets an
      `smtp://` server on a loopback address that offers no STARTTLS be used unencrypted (a
      local relay). Credentials are never sent without TLS.
    - `smtp_timeout_seconds`: per SMTP command.
    """

    slack_webhook_url: str | None = None
    http_allowed_hosts: list[str] = pydantic.Field(default_factory=list)
    http_credentials: str | None = None
    http_max_body_bytes: int = pydantic.Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    http_timeout_seconds: float = 30.0
    search_url: str | None = None
    smtp_url: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    email_from: str | None = None
    email_daily_cap: int = pydantic.Field(default=DEFAULT_EMAIL_DAILY_CAP, ge=0)
    email_unsubscribe: list[str] = pydantic.Field(default_factory=list)
    smtp_ca_file: str | None = None
    smtp_allow_plaintext_loopback: bool = False
    smtp_timeout_seconds: float = pydantic.Field(default=30.0, gt=0)

    def allow_list(self) -> HostAllowList:
        return HostAllowList(tuple(self.http_allowed_hosts))

    def credentials(self) -> dict[str, HttpCredential]:
        """The named credentials; raises CredentialError when the configuration is invalid."""
        return parse_credentials(self.http_credentials)

    def secret_values(self) -> list[str]:
        """Every secret value the tools may handle now, for redaction by value.

        The Slack webhook URL, the SMTP password, and the current value of every configured
        credential's variable. An invalid credential configuration contributes nothing (such
        credentials are refused when used, so their values are never sent).
        """
        values = [v for v in (self.slack_webhook_url, self.smtp_password) if v]
        try:
            credentials = self.credentials()
        except CredentialError:
            credentials = {}
        values += [os.environ[c.env] for c in credentials.values() if os.environ.get(c.env)]
        return values
