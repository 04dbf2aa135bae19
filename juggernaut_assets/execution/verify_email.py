"""Verification of `email_message` artifacts: a message the SMTP server accepted, as stored.

An artifact checks out when the `tool_calls` row it names is a successful `email` call whose
server answered 250 with a queue id, and the `.eml` file holds exactly the bytes that call
recorded (sha256), addressed to the recorded recipient under the recorded `Message-ID`.
It proves the server took the message, not that it reached an inbox.
"""

from __future__ import annotations

from email import message_from_bytes, policy

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.execution.verify import (
    VerifyEnv,
    _recorded_call,
    file_sha256,
    register_verifier,
)
from juggernaut_assets.lib.artifact_store import artifact_path

EMAIL_TOOL = "email"


def verify_email_message(artifact: Artifact, env: VerifyEnv) -> str | None:
    """None when the named call was accepted with a queue id and the file is what it sent."""
    problem, result = _recorded_call(artifact, env, EMAIL_TOOL)
    if problem:
        return problem
    call = artifact.external_id
    if result.get("state") != "accepted" or result.get("reply_code") != 250:
        return f"tool call {call} has no 250 reply to the message (state {result.get('state')})"
    if not result.get("queue_id"):
        return f"the server's 250 reply in tool call {call} carried no queue id"
    if not artifact.sha256 or not artifact.uri:
        return "email message artifact names no .eml file or sha256"
    if result.get("eml_path") != artifact.uri:
        return f"tool call {call} stored its message in another file"
    path = artifact_path(artifact.uri)
    if not path.is_file():
        return f"message file {path} does not exist"
    actual = file_sha256(path)
    if actual != artifact.sha256:
        return f"sha256 of {path} is {actual[:12]}…, expected {artifact.sha256[:12]}…"
    stored = message_from_bytes(path.read_bytes(), policy=policy.default)
    if stored.get("Message-ID") != result.get("message_id"):
        return f"{path} has Message-ID {stored.get('Message-ID')}, the call sent another"
    recipients = [a.addr_spec.lower() for a in getattr(stored.get("To"), "addresses", ())]
    if recipients != [str(result.get("to", "")).lower()]:
        return f"{path} is addressed to {', '.join(recipients) or 'nobody'}, not {result.get('to')}"
    return None


register_verifier(ArtifactKind.EMAIL_MESSAGE, verify_email_message)
