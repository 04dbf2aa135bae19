"""`domain_acquisition` end to end: the real Name.com client against a local Name.com, RDAP
from a local registry, the spend ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import (
    Experiment,
    GovernanceTask,
    SpendLedger,
    TaskArtifact,
    ToolCall,
    new_id,
)
from juggernaut_assets.execution.executor import ExecutionEnv, run_batch
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.execution.verify import verify_artifacts
from juggernaut_assets.execution.verify_domains import RegistrarVerifyEnv
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.registrar import NameComRegistrar
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks import settle
from juggernaut_assets.tasks.claim import claim_tasks
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.fakes.local_server import Reply
from tests.fakes.registrar_server import TOKEN, USERNAME, NameComServer, RegistryRdap
from tests.queue_driver import drain, task_row

TASK_TYPE = "domain_acquisition"


@pytest.fixture
def registry():
    with RegistryRdap() as server:
        yield server


@pytest.fixture
def namecom(registry):
    with NameComServer(registry) as server:
        yield server


def _registrar(namecom, registry, **overrides):
    settings = {
        "url": namecom.url,
        "username": USERNAME,
        "token": TOKEN,
        "spend_limit_usd_per_day": 50.0,
        "rdap_bootstrap_url": registry.bootstrap_url,
        "timeout_seconds": 2.0,
        **overrides,
    }
    return NameComRegistrar(**settings)


def _task(db, domain, *, max_price=20.0, approve=True, experiment_id=None, **kwargs):
    """A task as `expired_domains` makes it (waiting for approval), approved by an operator."""
    payload = {"domain": domain, "max_price_usd": max_price, "evidence": {"score": 71}}
    if experiment_id:
        payload["experiment_id"] = experiment_id
    with db.session() as s:
        task, _ = add_task(
            s,
            TASK_TYPE,
            payload,
            requires_approval=kwargs.pop("requires_approval", True),
            approval_reason="spends money",
            **kwargs,
        )
    if approve:
        with db.engine.begin() as conn:
            conn.execute(
                GovernanceTask.__table__.update()
                .where(GovernanceTask.id == task.id)
                .values(status="waiting_approval")
            )
        settle.approve(db.engine, task.id, "ops")
    return task.id


def _run(db, registrar, tmp_path):
    """Claim what is due and run each batch through the executor; the outcomes."""
    outcomes = []
    for batch in claim_tasks(db.engine, limit=10, batch_size=10).batches:
        with httpx.Client() as http:
            env = ExecutionEnv(
                engine=db.engine,
                tools=TaskToolsResource(),
                github=GitHubResource(),
                artifacts_root=tmp_path,
                http=http,
                registrar=registrar,
            )
            outcomes += list(run_batch(env, batch.key, f"run-{uuid.uuid4().hex[:8]}"))
    return outcomes


def _due(db, task_id):
    """The retry backoff has passed."""
    with db.engine.begin() as conn:
        conn.execute(
            GovernanceTask.__table__.update()
            .where(GovernanceTask.id == task_id)
            .values(next_retry_at=None)
        )


def _ledger(db):
    with db.engine.connect() as conn:
        return conn.execute(sa.select(SpendLedger.__table__)).all()


def _artifacts(db, task_id):
    with db.session() as s:
        return s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)).all()


def _registrar_calls(db, task_id):
    with db.session() as s:
        return s.scalars(
            sa.select(ToolCall)
            .where(ToolCall.task_id == task_id, ToolCall.tool_name == "registrar")
            .order_by(ToolCall.started_at)
        ).all()


def _creates(namecom):
    return namecom.calls("POST", "/v4/domains")


def _everything_stored(db):
    """Every row of the tables a credential could leak into, as text."""
    tables = [ToolCall, TaskArtifact, SpendLedger, GovernanceTask]
    with db.engine.connect() as conn:
        rows = [r for t in tables for r in conn.execute(sa.select(t.__table__)).all()]
    return json.dumps([[str(v) for v in r] for r in rows])


def test_approved_acquisition_within_budget_is_bought_once_verified_and_linked_to_rdap(
    governance_db, db_url, instance, namecom, registry
):
    task_id = _task(governance_db, "brightloom.com")
    resources = platform_resources(db_url, registrar=_registrar(namecom, registry))
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("completed", "verified"), row.error_message
    [order] = namecom.orders_taken
    [artifact] = _artifacts(governance_db, task_id)
    rdap_url = f"{registry.url}/rdap/domain/brightloom.com"
    assert (artifact.kind, artifact.uri, artifact.verified) == (
        "domain_registration",
        rdap_url,
        True,
    )
    assert artifact.external_id == str(order["order"])
    assert artifact.details["expire_date"] and artifact.details["amount_usd"] == 12.99
    [ledger] = _ledger(governance_db)
    assert (ledger.state, ledger.amount, ledger.external_id) == (
        "charged",
        12.99,
        str(order["order"]),
    )
    assert str(ledger.task_id) == task_id and namecom.account.balance == pytest.approx(87.01)
    [create] = _creates(namecom)
    assert create.body == {
        "domain": {"domainName": "brightloom.com"},
        "purchasePrice": 12.99,
        "purchaseType": "registration",
        "years": 1,
    }
    assert create.headers["Idempotency-Key"] == f"juggernaut-{task_id}-{ledger.id}"
    operations = [c.arguments["operation"] for c in _registrar_calls(governance_db, task_id)]
    assert operations == ["check_availability", "create_domain", "get_domain"]
    assert (
        f"order {order['order']}" in row.completion_evidence and rdap_url in row.completion_evidence
    )
    event = instance.get_latest_materialization_event(dg.AssetKey("task_runs"))
    link = event.asset_materialization.metadata["artifact_1_domain_registration"]
    assert link.value == rdap_url
    assert TOKEN not in _everything_stored(governance_db)


def test_forsale_target_points_the_domain_with_verified_dns_records_once(
    governance_db, db_url, tmp_path, namecom, registry
):
    """The second record fails (503) on the first attempt; the next attempt reuses the first
    record, creates the second, buys nothing."""
    registrar = _registrar(namecom, registry, forsale_target="https://sale.example.net/lander")
    task_id = _task(governance_db, "quietharbor.io")
    original = namecom._records
    posts = []

    def second_post_fails(method, domain, rest, body):
        if method == "POST":
            posts.append(body)
            if len(posts) == 2:
                return Reply(503, {"message": "Service Unavailable"})
        return original(method, domain, rest, body)

    namecom._records = second_post_fails
    _run(governance_db, registrar, tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "pending" and "is bought (order" in row.error_message
    assert "pointing it at https://sale.example.net/lander failed" in row.error_message
    _due(governance_db, task_id)
    [outcome] = _run(governance_db, registrar, tmp_path)
    assert outcome.ending == "completed", outcome.message
    zone = namecom.account.records["quietharbor.io"]
    assert {(r["host"], r["type"], r["answer"]) for r in zone} == {
        ("", "ANAME", "sale.example.net"),
        ("www", "CNAME", "sale.example.net"),
    }
    assert len(zone) == 2 and len(namecom.orders_taken) == 1 and len(posts) == 3
    dns = [a for a in _artifacts(governance_db, task_id) if a.kind == "dns_record"]
    assert len(dns) == 2 and all(a.verified for a in dns)
    assert {a.external_id for a in dns} == {str(r["id"]) for r in zone}


def test_unapproved_acquisition_never_reaches_the_registrar(
    governance_db, db_url, tmp_path, namecom, registry
):
    task_id = _task(governance_db, "brightloom.com", approve=False, requires_approval=False)
    _run(governance_db, _registrar(namecom, registry), tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "waiting_approval" and "operator approves" in row.error_message
    assert namecom.requests == [] and _ledger(governance_db) == []


def test_without_registrar_credentials_the_task_is_blocked_not_completed(
    governance_db, db_url, tmp_path, namecom, registry
):
    task_id = _task(governance_db, "brightloom.com")
    _run(governance_db, NameComRegistrar(url=namecom.url, spend_limit_usd_per_day=50), tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "blocked" and "no registrar is configured" in row.error_message
    assert namecom.requests == [] and row.completed_at is None


def test_wrong_token_blocks_and_is_never_stored(governance_db, db_url, tmp_path, namecom, registry):
    task_id = _task(governance_db, "brightloom.com")
    _run(governance_db, _registrar(namecom, registry, token="not-the-token-12345"), tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "blocked" and "refused the credentials" in row.error_message
    assert "not-the-token-12345" not in _everything_stored(governance_db)


def test_without_a_daily_limit_nothing_is_bought(
    governance_db, db_url, tmp_path, namecom, registry
):
    task_id = _task(governance_db, "brightloom.com")
    _run(governance_db, _registrar(namecom, registry, spend_limit_usd_per_day=0), tmp_path)
    row = task_row(db_url, task_id)
    assert (
        row.status == "blocked" and "JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY is 0" in row.error_message
    )
    assert _creates(namecom) == [] and _ledger(governance_db) == []


def test_over_the_task_price_is_not_bought_and_waits_for_the_operator(
    governance_db, db_url, tmp_path, namecom, registry
):
    namecom.prices["brightloom.com"] = 24.99
    task_id = _task(governance_db, "brightloom.com", max_price=20)
    _run(governance_db, _registrar(namecom, registry), tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "waiting_approval"
    assert "costs $24.99" in row.error_message and "max_price_usd $20.00" in row.error_message
    assert _creates(namecom) == [] and _ledger(governance_db) == []


def test_over_the_daily_budget_is_not_bought(governance_db, db_url, tmp_path, namecom, registry):
    registrar = _registrar(namecom, registry, spend_limit_usd_per_day=20)
    first = _task(governance_db, "brightloom.com")
    _run(governance_db, registrar, tmp_path)
    second = _task(governance_db, "quietharbor.io")
    _run(governance_db, registrar, tmp_path)
    assert task_row(governance_db.url, first).status == "completed"
    row = task_row(governance_db.url, second)
    assert row.status == "waiting_approval" and "daily spend limit is $20.00" in row.error_message
    assert "$12.99 is already reserved or spent today" in row.error_message
    assert [o["domain"] for o in namecom.orders_taken] == ["brightloom.com"]


def test_experiment_budget_limits_and_records_what_its_tasks_spend(
    governance_db, db_url, tmp_path, namecom, registry
):
    experiment_id = new_id()
    with governance_db.engine.begin() as conn:
        conn.execute(
            Experiment.__table__.insert().values(
                id=experiment_id, name="flip", status="running", budget_limit=30, budget_spent=20
            )
        )
    registrar = _registrar(namecom, registry)
    poor = _task(governance_db, "brightloom.com", experiment_id=experiment_id)
    _run(governance_db, registrar, tmp_path)
    row = task_row(db_url, poor)
    assert (
        row.status == "waiting_approval" and "$10.00 of its $30.00 budget left" in row.error_message
    )
    assert _creates(namecom) == []
    with governance_db.engine.begin() as conn:
        conn.execute(
            Experiment.__table__.update()
            .where(Experiment.id == experiment_id)
            .values(budget_limit=40)
        )
    settle.approve(governance_db.engine, poor, "ops")
    _run(governance_db, registrar, tmp_path)
    assert task_row(db_url, poor).status == "completed"
    with governance_db.engine.connect() as conn:
        spent = conn.execute(
            sa.select(Experiment.budget_spent).where(Experiment.id == experiment_id)
        ).scalar_one()
    assert spent == pytest.approx(32.99)
    [ledger] = _ledger(governance_db)
    assert str(ledger.experiment_id) == experiment_id and ledger.state == "charged"


def test_taken_and_premium_names_fail_without_spending(
    governance_db, db_url, tmp_path, namecom, registry
):
    namecom.taken.add("brightloom.com")
    namecom.premium["gold.io"] = 15.0
    taken = _task(governance_db, "brightloom.com")
    premium = _task(governance_db, "gold.io")
    _run(governance_db, _registrar(namecom, registry), tmp_path)
    assert task_row(db_url, taken).status == "failed"
    assert "not available to register" in task_row(db_url, taken).error_message
    assert task_row(db_url, premium).status == "failed"
    assert "premium name" in task_row(db_url, premium).error_message
    assert _creates(namecom) == [] and _ledger(governance_db) == []


def test_insufficient_funds_blocks_with_a_clear_reason_and_releases_the_reservation(
    governance_db, db_url, tmp_path, namecom, registry
):
    namecom.account.balance = 5.0
    task_id = _task(governance_db, "brightloom.com")
    _run(governance_db, _registrar(namecom, registry), tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "blocked"
    assert (
        "Payment failed: Insufficient Funds" in row.error_message
        and "Add funds" in row.error_message
    )
    [ledger] = _ledger(governance_db)
    assert ledger.state == "released" and namecom.orders_taken == []


@pytest.mark.parametrize("failure", ["5xx", "timeout", "huge"])
def test_an_order_without_an_answer_is_never_sent_again(
    governance_db, db_url, tmp_path, namecom, registry, failure
):
    namecom.fail_after_order.append(failure)
    registrar = _registrar(namecom, registry, timeout_seconds=0.2)
    task_id = _task(governance_db, "brightloom.com")
    _run(governance_db, registrar, tmp_path)
    namecom.release_held()
    row = task_row(db_url, task_id)
    assert row.status == "pending" and "it is not sent again" in row.error_message
    [held] = _ledger(governance_db)
    assert held.state == "reserved" and held.details["order_sent_at"]
    _due(governance_db, task_id)
    _run(governance_db, registrar, tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "completed", row.error_message
    [order] = namecom.orders_taken
    assert len(_creates(namecom)) == 1
    [ledger] = _ledger(governance_db)
    assert (ledger.id, ledger.state, ledger.external_id) == (
        held.id,
        "charged",
        str(order["order"]),
    )
    [artifact] = _artifacts(governance_db, task_id)
    assert artifact.details["recovered_after_unknown_outcome"] is True
    operations = [c.arguments["operation"] for c in _registrar_calls(governance_db, task_id)]
    assert operations == [
        "check_availability",
        "create_domain",
        "get_domain",
        "find_registration_order",
        "get_domain",
    ]


def test_registered_but_not_yet_in_rdap_is_not_completed_until_rdap_shows_it(
    governance_db, db_url, tmp_path, namecom, registry
):
    registry.lagging = True
    registrar = _registrar(namecom, registry)
    task_id = _task(governance_db, "brightloom.com")
    _run(governance_db, registrar, tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "pending" and row.completed_at is None and row.next_retry_at is not None
    assert "RDAP does not show it yet" in row.error_message and "buys nothing" in row.error_message
    assert _artifacts(governance_db, task_id) == []
    [ledger] = _ledger(governance_db)
    assert ledger.state == "charged"
    registry.catch_up()
    _due(governance_db, task_id)
    _run(governance_db, registrar, tmp_path)
    assert task_row(db_url, task_id).status == "completed"
    assert len(namecom.orders_taken) == 1 and len(_creates(namecom)) == 1


def test_two_acquisitions_racing_for_the_last_of_the_budget_buy_one_domain(
    governance_db, db_url, tmp_path, namecom, registry
):
    """Two runs, each in its own thread with its own engine, both past the availability check
    before either reserves: the daily limit covers one purchase, and exactly one is made."""
    registrar = _registrar(namecom, registry, spend_limit_usd_per_day=20)
    ids = [_task(governance_db, "brightloom.com"), _task(governance_db, "quietharbor.io")]
    batches = claim_tasks(governance_db.engine, limit=10, batch_size=1).batches
    both_checked = threading.Barrier(2)
    original = namecom._check

    def check_together(body):
        both_checked.wait(timeout=5)
        return original(body)

    namecom._check = check_together
    engines = [make_engine(db_url), make_engine(db_url)]

    def run(batch, engine):
        with httpx.Client() as http:
            env = ExecutionEnv(
                engine=engine,
                tools=TaskToolsResource(),
                github=GitHubResource(),
                artifacts_root=tmp_path,
                http=http,
                registrar=registrar,
            )
            list(run_batch(env, batch.key, f"run-{batch.key}"))

    threads = [
        threading.Thread(target=run, args=pair) for pair in zip(batches, engines, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    statuses = sorted(task_row(db_url, i).status for i in ids)
    assert statuses == ["completed", "waiting_approval"]
    assert len(namecom.orders_taken) == 1 and len(_creates(namecom)) == 1
    assert [r.state for r in _ledger(governance_db)] == ["charged"]


def _completed_registration(db, tmp_path, namecom, registry):
    registrar = _registrar(namecom, registry, forsale_target="203.0.113.7")
    _task(db, "brightloom.com")
    [outcome] = _run(db, registrar, tmp_path)
    assert outcome.ending == "completed", outcome.message
    return registrar, outcome.artifacts


def _problems(db, registrar, artifact):
    return verify_artifacts([artifact], RegistrarVerifyEnv(db.engine, registrar=registrar))


def test_domain_registration_verifier_rejects_what_the_registrar_or_rdap_do_not_confirm(
    governance_db, tmp_path, namecom, registry
):
    registrar, artifacts = _completed_registration(governance_db, tmp_path, namecom, registry)
    [registration] = [a for a in artifacts if a.kind == "domain_registration"]
    fresh = dataclasses.replace(registration, details=dict(registration.details))
    assert _problems(governance_db, registrar, fresh) == []
    assert "no registrar access" in _problems(governance_db, None, fresh)[0]
    elsewhere = dataclasses.replace(fresh, details={**fresh.details, "domain": "otherloom.com"})
    assert (
        "otherloom.com is not in the Name.com account"
        in _problems(governance_db, registrar, elsewhere)[0]
    )
    wrong_order = dataclasses.replace(fresh, external_id="999")
    assert (
        "order 999 is not in the Name.com account"
        in _problems(governance_db, registrar, wrong_order)[0]
    )
    wrong_link = dataclasses.replace(fresh, uri="https://rdap.example/domain/brightloom.com")
    assert "RDAP record is" in _problems(governance_db, registrar, wrong_link)[0]
    del registry.published["brightloom.com"]
    assert (
        "RDAP does not show brightloom.com registered"
        in _problems(governance_db, registrar, fresh)[0]
    )
    namecom.account.domains["brightloom.com"]["expireDate"] = "2020-01-01T00:00:00Z"
    assert "expired on 2020-01-01" in _problems(governance_db, registrar, fresh)[0]


def test_dns_record_verifier_rejects_a_record_the_zone_does_not_hold(
    governance_db, tmp_path, namecom, registry
):
    registrar, artifacts = _completed_registration(governance_db, tmp_path, namecom, registry)
    [apex, www] = [a for a in artifacts if a.kind == "dns_record"]
    assert (apex.details["type"], apex.details["answer"], www.details["host"]) == (
        "A",
        "203.0.113.7",
        "www",
    )
    assert _problems(governance_db, registrar, dataclasses.replace(apex)) == []
    missing = Artifact(kind=apex.kind, external_id="123", details=dict(apex.details))
    assert (
        "record 123 of brightloom.com does not exist"
        in _problems(governance_db, registrar, missing)[0]
    )
    moved = dataclasses.replace(apex, details={**apex.details, "answer": "198.51.100.1"})
    assert "answers 203.0.113.7, not 198.51.100.1" in _problems(governance_db, registrar, moved)[0]
    other_host = dataclasses.replace(apex, details={**apex.details, "host": "shop"})
    assert "not A 'shop'" in _problems(governance_db, registrar, other_host)[0]


def test_registrar_5xx_before_any_order_retries_without_spending(
    governance_db, db_url, tmp_path, namecom, registry
):
    namecom.fail_next("/v4/domains:checkAvailability", Reply(503, {"message": "Unavailable"}))
    task_id = _task(governance_db, "brightloom.com")
    _run(governance_db, _registrar(namecom, registry), tmp_path)
    row = task_row(db_url, task_id)
    assert row.status == "pending" and "HTTP 503" in row.error_message
    assert _ledger(governance_db) == [] and _creates(namecom) == []
