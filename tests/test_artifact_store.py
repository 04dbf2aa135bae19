"""File artifacts and asset values in an object store: a real S3 server on 127.0.0.1 (moto's),
spoken to by s3fs through UPath, with `JUGGERNAUT_ARTIFACTS_DIR=s3://bucket/artifacts`.

Tasks run through the real sensor and executor job; their files must land in the bucket (and
nowhere on disk), the verifiers must accept them there, and reject one changed afterwards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from juggernaut_assets import settings
from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import TaskArtifact
from juggernaut_assets.execution import handlers
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.lib.artifact_store import (
    ArtifactLocationError,
    artifact_path,
    make_dirs,
    storage_options,
)
from juggernaut_assets.resources.polars_io import PolarsParquetIOManager
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.create import add_task
from tests.fakes.http_server import Reply
from tests.queue_driver import drain, task_row
from tests.test_verifiers import _rejected, _run_with

pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

from tests.fakes.s3_server import KEY_ID, SECRET, Bucket, new_bucket, s3_server  # noqa: E402


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, on a free port."""
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """A new bucket; artifacts go to `s3://<bucket>/artifacts` (credentials from the env)."""
    made = new_bucket(s3_endpoint)
    for name, value in made.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield made
    s3fs.S3FileSystem.clear_instance_cache()


def _add(db, task_type: str, payload: dict) -> str:
    with db.session() as s:
        return add_task(s, task_type, payload)[0].id


def _artifacts(db, task_id: str) -> list[TaskArtifact]:
    with db.session() as s:
        return s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)).all()


def _nothing_on_disk() -> None:
    local = Path(settings.data_dir()) / "artifacts"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))


def test_a_local_location_stays_the_same_path_text():
    for text in ("/srv/artifacts/t1/attempt-1/query_result.json", "relative/dir"):
        path = artifact_path(text)
        assert isinstance(path, Path) and str(path) == text
    assert str(artifact_path("file:///srv/a/b.eml")) == "/srv/a/b.eml"
    assert str(artifact_path(Path("/srv/x")) / "y") == "/srv/x/y"


def test_s3_options_name_the_endpoint_and_never_a_credential(monkeypatch):
    monkeypatch.setenv("JUGGERNAUT_ARTIFACTS_DIR", "s3://bucket/artifacts")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:10")
    path = artifact_path("s3://bucket/artifacts") / "t1" / "q.json"
    assert str(path) == "s3://bucket/artifacts/t1/q.json"
    assert path.storage_options == {"endpoint_url": "http://127.0.0.1:10"}
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert storage_options("s3") == {"endpoint_url": "http://127.0.0.1:9"}
    assert storage_options("gcs") == {}
    assert SECRET not in repr(path) and KEY_ID not in repr(path.storage_options)


def test_a_stored_location_outside_the_artifact_store_is_never_opened(
    monkeypatch, http_server, governance_db
):
    """Rows may come from other programs: a URL fsspec could follow is a problem, not a read."""
    served = http_server.route("GET", "/secret", Reply(200, "internal"))
    monkeypatch.setenv("JUGGERNAUT_ARTIFACTS_DIR", "/srv/artifacts")
    for location in (served, "memory://x/y.json", "s3://bucket/t/q.json"):
        with pytest.raises(ArtifactLocationError, match="not where artifacts are stored"):
            artifact_path(location)
    digest = hashlib.sha256(b"internal").hexdigest()
    claims = [
        Artifact(ArtifactKind.FILE, uri=served, sha256=digest),
        Artifact(ArtifactKind.QUERY_RESULT, uri=served, sha256=digest),
        Artifact(ArtifactKind.HTTP_RESPONSE, uri=served, details={"body_path": served}),
    ]
    problems = verify_artifacts(claims, VerifyEnv(governance_db))
    assert len(problems) == 3 and "http:// is not where artifacts are stored" in problems[0]
    assert not any(a.verified for a in claims)
    assert http_server.received == []


def test_a_missing_bucket_is_not_created_and_the_write_fails(bucket):
    missing = f"{bucket.name}-missing"
    path = artifact_path(f"s3://{missing}/artifacts/t1")
    make_dirs(path)
    assert missing not in [b["Name"] for b in bucket.client.list_buckets()["Buckets"]]
    with pytest.raises(OSError):
        (path / "q.json").write_bytes(b"{}")


def test_analysis_task_writes_its_query_result_to_s3_and_is_verified_there(
    governance_db, db_url, instance, resources, bucket
):
    task_id = _add(governance_db, "analysis", {"sql": "SELECT 7 AS n, 'seven' AS word"})
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("completed", "verified")
    [artifact] = _artifacts(governance_db, task_id)
    assert artifact.uri == f"s3://{bucket.name}/artifacts/{task_id}/attempt-1/query_result.json"
    assert bucket.keys() == [bucket.key(artifact.uri)]
    stored = bucket.read(artifact.uri)
    assert hashlib.sha256(stored).hexdigest() == artifact.sha256 and artifact.verified
    assert json.loads(stored)["rows"] == [[7, "seven"]]
    assert artifact.details["bytes"] == len(stored)
    _nothing_on_disk()
    [event] = instance.fetch_materializations(dg.AssetKey("task_runs"), limit=1).records
    preview = event.asset_materialization.metadata["artifact_1_query_result_preview"].value
    assert [dict(r.data) for r in preview.records] == [{"n": "7", "word": "seven"}]


def test_workflow_http_and_database_steps_keep_their_files_in_s3(
    governance_db, db_url, instance, resources, bucket, http_server
):
    url = http_server.route("GET", "/status", Reply(200, {"ok": True}))
    host = http_server.url.removeprefix("http://")
    resources = {**resources, "task_tools": TaskToolsResource(http_allowed_hosts=[host])}
    steps = [
        {"tool": "http", "args": {"url": url}},
        {"tool": "database", "args": {"sql": "SELECT 1 AS one UNION ALL SELECT 2"}},
    ]
    task_id = _add(governance_db, "workflow", {"steps": steps})
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "completed"
    by_kind = {a.kind: a for a in _artifacts(governance_db, task_id)}
    body = bucket.read(by_kind["http_response"].details["body_path"])
    assert json.loads(body) == {"ok": True}
    assert hashlib.sha256(body).hexdigest() == by_kind["http_response"].sha256
    query = by_kind["query_result"]
    assert json.loads(bucket.read(query.uri))["row_count"] == 2 and query.verified
    _nothing_on_disk()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda b, key: b.client.put_object(Bucket=b.name, Key=key, Body=b"[]"), "sha256"),
        (lambda b, key: b.client.delete_object(Bucket=b.name, Key=key), "does not exist"),
    ],
    ids=["replaced", "deleted"],
)
def test_a_query_result_changed_in_s3_after_it_was_written_is_rejected(
    governance_db, db_url, instance, resources, monkeypatch, bucket, change, said
):
    original = handlers.HANDLERS[HandlerName.ANALYSIS]

    def changed_behind_its_back(ctx):
        result = original(ctx)
        change(bucket, bucket.key(result.artifacts[0].uri))
        return result

    task_id = _run_with(governance_db, instance, resources, monkeypatch, changed_behind_its_back)
    message = _rejected(db_url, task_id)
    assert "verification failed" in message and said in message
    assert f"s3://{bucket.name}/artifacts/{task_id}/" in message
    assert [a.verified for a in _artifacts(governance_db, task_id)] == [False]


def test_polars_io_manager_writes_and_reads_a_frame_in_s3(bucket):
    @dg.asset
    def prices() -> pl.DataFrame:
        return pl.DataFrame({"sku": ["a", "b"], "cents": [125, 990]})

    @dg.asset
    def total(prices: pl.DataFrame) -> pl.DataFrame:
        return prices.select(pl.col("cents").sum())

    io_manager = PolarsParquetIOManager(base_path=f"s3://{bucket.name}/assets")
    result = dg.materialize([prices, total], resources={"io_manager": io_manager})
    assert result.success
    assert bucket.keys() == ["assets/prices.parquet", "assets/total.parquet"]
    stored = pl.read_parquet(bucket.read(f"s3://{bucket.name}/assets/total.parquet"))
    assert stored.item() == 1115
