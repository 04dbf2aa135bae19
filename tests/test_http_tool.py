"""The workflow `http` tool: address checks, redirects, body cap, arguments, idempotency,
named credentials and redaction; and the verifiers of `http_response` and `message` artifacts.

Task outcomes go through the real sensor and executor (`drain`); the pure address and
redaction rules get fast unit tests.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import logging
import socket
import tracemalloc
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

import juggernaut_assets.definitions as definitions
from juggernaut_assets import settings
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, ToolCall, metadata, new_id
from juggernaut_assets.execution import handlers
from juggernaut_assets.execution.outcome import Artifact, HandlerResult, TaskRejected
from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.execution.tools import guarded_http
from juggernaut_assets.execution.tools.guarded_http import guarded_client
from juggernaut_assets.execution.tools.http import idempotency_key
from juggernaut_assets.lib.netguard import (
    AddressRefused,
    HostAllowList,
    ambiguous_numeric_host,
    non_public_reason,
)
from juggernaut_assets.lib.redaction import redact, scrub_url
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.create import add_task
from juggernaut_assets.tasks.payloads import decode_payload
from tests.fakes.http_server import LocalHTTPServer, Reply
from tests.fakes.stream_server import StreamingServer
from tests.queue_driver import drain, task_row

TOKEN = "acme-t0ken-4f9c2b7e1d"


def _add(db, payload, **kwargs):
    with db.session() as s:
        task, _ = add_task(s, "workflow", payload, **kwargs)
    return task.id


def _http(url, **args):
    return {"steps": [{"tool": "http", "args": {"url": url, **args}}]}


def _host(server):
    return server.url.removeprefix("http://")


def _port(server):
    return int(server.url.rsplit(":", 1)[1])


def _tools(resources, **settings):
    return {**resources, "task_tools": TaskToolsResource(**settings)}


def _calls(db, task_id):
    with db.session() as s:
        return s.scalars(sa.select(ToolCall).where(ToolCall.task_id == task_id)).all()


def _artifacts(db, task_id):
    with db.session() as s:
        return s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)).all()


def _stored_text(db_url: str) -> str:
    """Every row of every governance table as text, except the raw task payloads."""
    parts = []
    with make_engine(db_url).connect() as conn:
        for table in metadata.sorted_tables:
            columns = [
                c for c in table.c if not (table.name == "governance_tasks" and c.name == "payload")
            ]
            parts += [repr(tuple(row)) for row in conn.execute(sa.select(*columns))]
    return "\n".join(parts)


def _dagster_text(instance) -> str:
    return "\n".join(
        repr(record) for run in instance.get_runs() for record in instance.all_logs(run.run_id)
    )


@pytest.fixture
def other_server():
    with LocalHTTPServer() as server:
        yield server


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
    ],
)
def test_non_public_addresses_have_a_reason_to_be_refused(address):
    assert non_public_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address):
    assert non_public_reason(ipaddress.ip_address(address)) is None


def test_only_an_exact_allowlist_entry_opens_a_non_public_address():
    allowed = HostAllowList(("127.0.0.1:8080", "*.example.com", "intranet"))
    assert allowed.opens("127.0.0.1", 8080)
    assert not allowed.opens("127.0.0.1", 8081)
    assert not allowed.opens("localhost", 8080)
    assert not allowed.opens("api.example.com", 443)
    assert allowed.opens("intranet", 9000)
    assert allowed.permits("api.example.com", 443) and not allowed.permits("example.org", 443)
    assert not allowed.permits("127.0.0.1", 8081)
    assert HostAllowList().permits("anything.org", 443) and not HostAllowList().opens("x", 80)


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001"])
def test_ambiguous_numeric_hosts_are_recognised(host):
    assert ambiguous_numeric_host(host)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "example.com", "1.2.3.4", "3com.net", "::1", "::ffff:127.0.0.1"]
)
def test_canonical_hosts_are_not_ambiguous(host):
    assert not ambiguous_numeric_host(host)


def test_redaction_strips_url_secrets_and_known_values():
    assert scrub_url("https://u:pw@h.io/p?api_key=abc&x=1&sig=zz") == (
        "https://h.io/p?api_key=***&x=1&sig=***"
    )
    stored = redact(
        {
            "headers": {"Authorization": "Bearer zz-header-value"},
            "note": f"zz-header-value and {TOKEN} at https://h.io/?token=q1",
        },
        [TOKEN],
    )
    assert stored == {
        "headers": {"Authorization": "***"},
        "note": "*** and *** at https://h.io/?token=***",
    }


def _resolving(monkeypatch, answers):
    """Make `socket.getaddrinfo` answer `answers[host]` (a list of addresses) for test hosts."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(guarded_http.socket, "getaddrinfo", fake)


def test_the_guard_connects_to_the_address_it_vetted(monkeypatch, http_server):
    http_server.route("GET", "/x", Reply(200, "pinned"))
    port = _port(http_server)
    _resolving(
        monkeypatch,
        {"rebind.test": ["127.0.0.1"], "mixed.test": ["93.184.215.14", "127.0.0.1"]},
    )
    refusing = guarded_client(HostAllowList(), "test", 5.0)
    for host in ("rebind.test", "mixed.test"):
        with pytest.raises(AddressRefused, match=r"127\.0\.0\.1, a loopback address"):
            refusing.get(f"http://{host}:{port}/x")
    opened = guarded_client(HostAllowList((f"rebind.test:{port}",)), "test", 5.0)
    assert opened.get(f"http://rebind.test:{port}/x").text == "pinned"
    assert [r.headers["Host"] for r in http_server.received] == [f"rebind.test:{port}"]


def test_definitions_bind_the_http_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv(
        "JUGGERNAUT_HTTP_CREDENTIALS", '{"acme": {"env": "ACME_TOKEN", "hosts": ["a.io"]}}'
    )
    monkeypatch.setenv("JUGGERNAUT_HTTP_MAX_BODY_BYTES", "2048")
    try:
        tools = importlib.reload(definitions).defs.resources["task_tools"]
        assert isinstance(tools.http_credentials, dg.EnvVar)
        assert tools.http_max_body_bytes == 2048
    finally:
        monkeypatch.undo()
        importlib.reload(definitions)


def test_loopback_private_and_metadata_targets_are_refused_by_default(
    governance_db, db_url, instance, resources, http_server
):
    http_server.route("GET", "/x", Reply(200, "fine"))
    port = _port(http_server)
    urls = [
        f"{http_server.url}/x",
        f"http://localhost:{port}/x",
        f"http://[::1]:{port}/x",
        f"http://[::ffff:127.0.0.1]:{port}/x",
        f"http://0.0.0.0:{port}/x",
        f"http://2130706433:{port}/x",
        f"http://0177.0.0.1:{port}/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/",
    ]
    ids = [_add(governance_db, _http(url)) for url in urls]
    drain(instance, resources)
    for url, task_id in zip(urls, ids, strict=True):
        row = task_row(db_url, task_id)
        assert row.status == "failed", url
        assert any(
            phrase in row.error_message
            for phrase in ("tasks may call public addresses only", "ambiguous numeric", "valid URL")
        ), row.error_message
        [call] = _calls(governance_db, task_id)
        assert call.completed_at is not None and not call.success
    assert "a loopback address" in task_row(db_url, ids[0]).error_message
    assert "an IPv4-embedded loopback address" in task_row(db_url, ids[3]).error_message
    assert "link-local" in task_row(db_url, ids[7]).error_message
    assert http_server.received == []


def test_an_exact_allowlist_entry_opens_only_that_host_and_port(
    governance_db, db_url, instance, resources, http_server, other_server
):
    listed = http_server.route("GET", "/x", Reply(200, "fine"))
    unlisted = other_server.route("GET", "/x", Reply(200, "fine"))
    resources = _tools(resources, http_allowed_hosts=[_host(http_server), "*"])
    opened = _add(governance_db, _http(listed))
    other_port = _add(governance_db, _http(unlisted))
    by_name = _add(governance_db, _http(f"http://localhost:{_port(http_server)}/x"))
    drain(instance, resources)
    assert task_row(db_url, opened).status == "completed"
    for task_id in (other_port, by_name):
        row = task_row(db_url, task_id)
        assert row.status == "failed" and "a loopback address" in row.error_message
    assert len(http_server.received) == 1 and other_server.received == []


def test_redirects_are_rechecked_on_every_hop(
    governance_db, db_url, instance, resources, http_server, other_server
):
    target = other_server.route("GET", "/landing", Reply(200, "inside"))
    to_loopback = http_server.route(
        "GET",
        "/to-loopback",
        Reply(302, "", {"Location": f"http://localhost:{_port(other_server)}/landing"}),
    )
    to_unlisted = http_server.route("GET", "/to-unlisted", Reply(302, "", {"Location": target}))
    http_server.route("GET", "/result", Reply(200, "done"))
    see_other = http_server.route("POST", "/submit", Reply(303, "", {"Location": "/result"}))
    resources = _tools(resources, http_allowed_hosts=[_host(http_server), "local*"])
    loopback = _add(governance_db, _http(to_loopback))
    unlisted = _add(governance_db, _http(to_unlisted))
    followed = _add(governance_db, _http(see_other, method="POST", json={"a": 1}))
    drain(instance, resources)
    row = task_row(db_url, loopback)
    assert row.status == "failed"
    assert "redirect 1 to http://localhost" in row.error_message
    assert "a loopback address" in row.error_message
    row = task_row(db_url, unlisted)
    assert row.status == "failed"
    assert "redirect 1 to" in row.error_message
    assert "host '127.0.0.1' is not in the http allowlist" in row.error_message
    assert other_server.received == []
    assert task_row(db_url, followed).status == "completed"
    assert [(r.method, r.path) for r in http_server.received[-2:]] == [
        ("POST", "/submit"),
        ("GET", "/result"),
    ]
    [call] = _calls(governance_db, followed)
    assert [hop["status_code"] for hop in call.result["redirects"]] == [303]
    assert call.result["final_url"].endswith("/result")


def test_too_many_redirects_fail_the_step(governance_db, db_url, instance, resources, http_server):
    loop = http_server.route("GET", "/loop", Reply(302, "", {"Location": "/loop"}))
    task_id = _add(governance_db, _http(loop))
    drain(instance, _tools(resources, http_allowed_hosts=[_host(http_server)]))
    row = task_row(db_url, task_id)
    assert row.status == "failed" and "more than 5 redirects" in row.error_message
    assert len(http_server.received) == 6


def test_a_body_over_the_cap_fails_the_step_without_holding_it(
    governance_db, db_url, instance, resources
):
    total = 30 * 1024 * 1024
    with (
        StreamingServer(total) as streamed,
        StreamingServer(total, declare_length=True) as declared,
        StreamingServer(1024) as small,
    ):
        resources = _tools(
            resources,
            http_allowed_hosts=[_host(streamed), _host(declared), _host(small)],
            http_max_body_bytes=1024 * 1024,
        )
        # A small fetch through the same path first, so that what is traced below is the
        # capped download, not modules and caches the first task of a process sets up.
        warm_id = _add(governance_db, _http(f"{small.url}/small"))
        drain(instance, resources)
        assert task_row(db_url, warm_id).status == "completed"
        streamed_id = _add(governance_db, _http(f"{streamed.url}/big"))
        declared_id = _add(governance_db, _http(f"{declared.url}/big"))
        tracemalloc.start()
        try:
            drain(instance, resources)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        for task_id in (streamed_id, declared_id):
            row = task_row(db_url, task_id)
            assert row.status == "failed"
            assert "larger than the cap of 1048576 bytes" in row.error_message
        assert peak < 8 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
        assert streamed.sent < total and declared.requests == 1
    for task_id in (streamed_id, declared_id):
        assert not list((settings.artifacts_path() / task_id).rglob("response.body"))


def test_a_body_within_the_cap_is_stored_as_a_verified_file(
    governance_db, db_url, instance, resources
):
    with StreamingServer(3 * 65536 + 5) as server:
        task_id = _add(governance_db, _http(f"{server.url}/file"))
        drain(instance, _tools(resources, http_allowed_hosts=[_host(server)]))
    assert task_row(db_url, task_id).status == "completed"
    [artifact] = _artifacts(governance_db, task_id)
    body = Path(artifact.details["body_path"])
    assert body.name == "response.body" and body.parent.name == "step-1"
    assert body.stat().st_size == 3 * 65536 + 5 == artifact.details["bytes"]
    assert artifact.verified and artifact.details["status_code"] == 200
    [call] = _calls(governance_db, task_id)
    assert artifact.external_id == call.id and call.result["sha256"] == artifact.sha256


def test_bad_arguments_fail_clearly_and_finish_the_tool_call(
    governance_db, db_url, instance, resources, http_server
):
    url = http_server.route("GET", "/x", Reply(200, "fine"))
    resources = _tools(resources, http_allowed_hosts=[_host(http_server)])
    cases = {
        "printable ASCII": _http(url, headers={"X-Note": "café"}),
        "without CR/LF": _http(url, headers={"X-Note": "a\r\nX-Injected: 1"}),
        "not a valid token": _http(url, headers={"Bad Name": "v"}),
        "is set by the tool": _http(url, headers={"Host": "elsewhere.example"}),
        "method": _http(url, method="TRACE"),
        "scheme 'file' is not allowed": _http("file:///etc/passwd"),
        "scheme 'ftp' is not allowed": _http("ftp://127.0.0.1/x"),
    }
    ids = {phrase: _add(governance_db, payload) for phrase, payload in cases.items()}
    drain(instance, resources)
    for phrase, task_id in ids.items():
        row = task_row(db_url, task_id)
        assert (row.status, row.attempt_count) == ("failed", 1), phrase
        assert phrase in row.error_message, row.error_message
        [call] = _calls(governance_db, task_id)
        assert call.completed_at is not None and call.success is False
        assert call.error_message
    assert http_server.received == []


def test_writes_carry_an_idempotency_key_that_is_stable_across_retries(
    governance_db, db_url, instance, resources, http_server
):
    one = http_server.route("POST", "/one", Reply(201, "made"))
    two = http_server.route("PUT", "/two", Reply(503, "busy"), Reply(200, "ok"))
    own = http_server.route("PATCH", "/own", Reply(200, "ok"))
    read = http_server.route("GET", "/read", Reply(200, "ok"))
    steps = [
        {"tool": "http", "args": {"url": one, "method": "POST", "json": {"n": 1}}},
        {"tool": "http", "args": {"url": read}},
        {
            "tool": "http",
            "args": {"url": own, "method": "PATCH", "headers": {"Idempotency-Key": "mine-1"}},
        },
        {"tool": "http", "args": {"url": two, "method": "PUT"}},
    ]
    task_id = _add(governance_db, {"steps": steps})
    resources = _tools(resources, http_allowed_hosts=[_host(http_server)])
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "pending"
    with governance_db.engine.begin() as conn:
        conn.execute(
            sa.update(GovernanceTask).where(GovernanceTask.id == task_id).values(next_retry_at=None)
        )
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "completed"
    keys: dict[str, list[str | None]] = {}
    for received in http_server.received:
        keys.setdefault(received.path, []).append(received.headers.get("Idempotency-Key"))
    assert keys["/one"] == [idempotency_key(task_id, 1)] * 2
    assert keys["/read"] == [None, None]
    assert keys["/own"] == ["mine-1", "mine-1"]
    assert keys["/two"] == [idempotency_key(task_id, 4)] * 2
    assert idempotency_key(task_id, 1) != idempotency_key(task_id, 4)


def test_a_named_credential_goes_only_to_its_hosts_and_is_never_stored(
    governance_db, db_url, instance, resources, http_server, other_server, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    credentials = {
        "acme": {
            "env": "ACME_TOKEN",
            "hosts": [_host(http_server)],
            "header": "Authorization",
            "scheme": "Bearer",
        },
        "keyed": {"env": "ACME_TOKEN", "hosts": [_host(http_server)], "header": "X-Api-Key"},
    }
    landing = other_server.route("GET", "/landing", Reply(200, "landed"))
    me = http_server.route("GET", "/me", Reply(200, {"you_sent": f"Bearer {TOKEN}"}))
    away = http_server.route("GET", "/away", Reply(302, "", {"Location": landing}))
    denied = http_server.route("GET", "/denied", Reply(401, f"bad token {TOKEN}"))
    resources = _tools(
        resources,
        http_allowed_hosts=[_host(http_server), _host(other_server)],
        http_credentials=json.dumps(credentials),
    )
    completed = _add(
        governance_db,
        {
            "steps": [
                {"tool": "http", "args": {"url": me, "credential": "acme"}},
                {"tool": "http", "args": {"url": away, "credential": "keyed"}},
            ]
        },
    )
    failed = _add(governance_db, _http(denied, credential="acme"))
    wrong_host = _add(governance_db, _http(landing, credential="acme"))
    drain(instance, resources)
    assert task_row(db_url, completed).status == "completed"
    assert task_row(db_url, failed).status == "failed"
    row = task_row(db_url, wrong_host)
    assert row.status == "failed" and "may be sent only to" in row.error_message
    sent = [r.headers for r in http_server.received]
    assert sent[0]["Authorization"] == f"Bearer {TOKEN}" and sent[1]["X-Api-Key"] == TOKEN
    assert [r.path for r in other_server.received] == ["/landing"]
    assert "Authorization" not in other_server.received[0].headers
    assert "X-Api-Key" not in other_server.received[0].headers
    [_, redirected] = _calls(governance_db, completed)
    assert [h["credential_sent"] for h in redirected.result["redirects"]] == [True]
    assert "***" in _calls(governance_db, failed)[0].result["body_preview"]
    assert TOKEN not in _stored_text(db_url)
    assert TOKEN not in _dagster_text(instance)
    assert TOKEN not in caplog.text


def test_credential_problems_block_the_task_with_the_reason(
    governance_db, db_url, instance, resources, http_server, monkeypatch
):
    url = http_server.route("GET", "/x", Reply(200, "fine"))
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    credentials = {"acme": {"env": "ACME_TOKEN", "hosts": [_host(http_server)]}}
    unset = _add(governance_db, _http(url, credential="acme"))
    unknown = _add(governance_db, _http(url, credential="nope"))
    drain(
        instance,
        _tools(
            resources,
            http_allowed_hosts=[_host(http_server)],
            http_credentials=json.dumps(credentials),
        ),
    )
    row = task_row(db_url, unset)
    assert row.status == "blocked" and "ACME_TOKEN, which is not set" in row.error_message
    row = task_row(db_url, unknown)
    assert row.status == "blocked" and "no credential named 'nope'" in row.error_message
    broken = _add(governance_db, _http(url, credential="acme"))
    drain(
        instance,
        _tools(resources, http_allowed_hosts=[_host(http_server)], http_credentials="{not json"),
    )
    row = task_row(db_url, broken)
    assert row.status == "blocked"
    assert "JUGGERNAUT_HTTP_CREDENTIALS is not valid JSON" in row.error_message
    assert http_server.received == []


def test_secrets_written_into_the_payload_are_refused_and_not_stored(
    governance_db, db_url, instance, resources, http_server
):
    url = http_server.route("GET", "/x", Reply(200, "fine"))
    host = _host(http_server)
    secret = "payload-s3cret-77a1"
    payloads = [
        _http(url, headers={"Authorization": f"Bearer {secret}"}),
        _http(url, headers={"X-Api-Key": secret}),
        _http(url, headers={"Cookie": f"session={secret}"}),
        _http(f"{url}?api_key={secret}"),
        _http(url, params={"access_token": secret}),
        _http(f"http://robot:{secret}@{host}/x"),
    ]
    ids = [_add(governance_db, payload) for payload in payloads]
    drain(instance, _tools(resources, http_allowed_hosts=[host]))
    for task_id in ids:
        row = task_row(db_url, task_id)
        assert row.status == "failed"
        assert "put the secret in a named credential: JUGGERNAUT_HTTP_CREDENTIALS" in (
            row.error_message
        )
    assert http_server.received == []
    assert secret not in _stored_text(db_url)


def test_secret_query_values_in_urls_are_stripped_from_stored_rows(
    governance_db, db_url, instance, resources, http_server
):
    signature = "sig-9d8c7b6a5f4e"
    http_server.route("GET", "/download", Reply(200, "the file"))
    presign = http_server.route(
        "GET",
        "/presign",
        Reply(302, "", {"Location": f"/download?X-Amz-Signature={signature}&part=1"}),
    )
    task_id = _add(governance_db, _http(presign))
    drain(instance, _tools(resources, http_allowed_hosts=[_host(http_server)]))
    assert task_row(db_url, task_id).status == "completed"
    assert http_server.received[-1].path == f"/download?X-Amz-Signature={signature}&part=1"
    [call] = _calls(governance_db, task_id)
    assert call.result["final_url"].endswith("/download?X-Amz-Signature=***&part=1")
    assert signature not in _stored_text(db_url)
    assert signature not in _dagster_text(instance)


def test_http_client_loggers_do_not_print_the_webhook_or_credential(
    governance_db, db_url, instance, resources, http_server, monkeypatch, caplog
):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    hook = http_server.route("POST", "/services/T0/B0/hook-s3cret-path", Reply(200, "ok"))
    url = http_server.route("GET", "/x", Reply(200, "fine"))
    credentials = {"acme": {"env": "ACME_TOKEN", "hosts": [_host(http_server)]}}
    resources = _tools(
        resources,
        slack_webhook_url=hook,
        http_allowed_hosts=[_host(http_server)],
        http_credentials=json.dumps(credentials),
    )
    posted = _add(governance_db, {"steps": [{"tool": "slack", "args": {"text": "hi"}}]})
    called = _add(governance_db, _http(url, credential="acme"))
    drain(instance, resources)
    assert task_row(db_url, posted).status == "completed"
    assert task_row(db_url, called).status == "completed"
    assert "hook-s3cret-path" not in caplog.text and TOKEN not in caplog.text
    assert "hook-s3cret-path" not in _stored_text(db_url)


def _patch_workflow(monkeypatch, after):
    """Run the real workflow handler, then let `after` alter what it returns."""
    original = handlers.HANDLERS[HandlerName.WORKFLOW]

    def patched(ctx):
        return after(ctx, original(ctx))

    monkeypatch.setitem(handlers.HANDLERS, HandlerName.WORKFLOW, patched)


def _assert_rejected(db_url, task_id, why):
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("pending", "rejected")
    assert "verification failed" in row.error_message and why in row.error_message


def test_an_http_response_whose_body_file_changed_is_rejected(
    governance_db, db_url, instance, resources, http_server, monkeypatch
):
    url = http_server.route("GET", "/x", Reply(200, "the original body"))

    def tamper(ctx, result):
        body = Path(result.artifacts[0].details["body_path"])
        body.write_bytes(body.read_bytes().replace(b"original", b"forged!!"))
        return result

    _patch_workflow(monkeypatch, tamper)
    task_id = _add(governance_db, _http(url))
    drain(instance, _tools(resources, http_allowed_hosts=[_host(http_server)]))
    _assert_rejected(db_url, task_id, "sha256 of")
    assert [a.verified for a in _artifacts(governance_db, task_id)] == [False]


def test_an_http_response_naming_a_failed_call_is_rejected(
    governance_db, db_url, instance, resources, http_server, monkeypatch
):
    url = http_server.route("GET", "/x", Reply(200, "fine"))
    missing = http_server.route("GET", "/missing", Reply(404, "nope"))

    def swap_call(ctx, result):
        with pytest.raises(TaskRejected):
            ctx.tools.call("http", {"url": missing})
        [failed] = [c for c in _calls_of(ctx) if not c.success]
        result.artifacts[0].external_id = failed.id
        return result

    _patch_workflow(monkeypatch, swap_call)
    task_id = _add(governance_db, _http(url))
    drain(instance, _tools(resources, http_allowed_hosts=[_host(http_server)]))
    _assert_rejected(db_url, task_id, "did not succeed")


def _calls_of(ctx):
    with ctx.engine.connect() as conn:
        return conn.execute(sa.select(ToolCall).where(ToolCall.task_id == ctx.task_id)).all()


def test_a_message_artifact_without_a_successful_slack_call_is_rejected(
    governance_db, db_url, instance, resources, http_server, monkeypatch
):
    hook = http_server.route("POST", "/hook", Reply(400, "invalid_payload"))
    url = http_server.route("GET", "/x", Reply(200, "fine"))
    original = handlers.HANDLERS[HandlerName.WORKFLOW]

    def claims_a_message(ctx):
        """Returns a message artifact naming the wrong call, as a buggy handler could."""
        names = decode_payload(ctx.payload).get("names")
        if names == "an http call":
            call_id = original(ctx).artifacts[0].external_id
        elif names == "no call":
            call_id = new_id()
        else:
            with pytest.raises(TaskRejected):
                ctx.tools.call("slack", {"text": "hi"})
            call_id = _calls_of(ctx)[0].id
        return HandlerResult([Artifact(kind=ArtifactKind.MESSAGE, external_id=call_id)], "sent")

    monkeypatch.setitem(handlers.HANDLERS, HandlerName.WORKFLOW, claims_a_message)
    resources = _tools(resources, slack_webhook_url=hook, http_allowed_hosts=[_host(http_server)])
    slack = [{"tool": "slack", "args": {"text": "hi"}}]
    failed_call = _add(governance_db, {"steps": slack})
    no_call = _add(governance_db, {"steps": slack, "names": "no call"})
    http_call = _add(governance_db, {**_http(url), "names": "an http call"})
    drain(instance, resources)
    _assert_rejected(db_url, failed_call, "did not succeed")
    _assert_rejected(db_url, no_call, "is not recorded")
    _assert_rejected(db_url, http_call, "is a http call, not slack")
