"""Where the step of `execute_tasks` runs: in the run's own process, or on Celery workers.

`batch_executor()` reads `JUGGERNAUT_EXECUTOR` when the definitions load:

- unset or `in_process` (the default): the batch runs inside the run worker, as in the embedded
  demo and the tests. One machine, no broker.
- `celery`: Dagster's own `dagster_celery.celery_executor`. The run worker (started by the
  daemon's run launcher) submits the `execute_task_batch` step to a broker, and whichever
  Celery worker is free runs it; the run worker waits for its events. Broker and result backend
  come from the environment only (`JUGGERNAUT_CELERY_BROKER_URL` and
  `JUGGERNAUT_CELERY_BACKEND_URL`, both required: there is no default host that would be right
  on every machine), bound as `{"env": ...}` so no URL or password lands in the run's
  configuration or its logs.
  `JUGGERNAUT_CELERY_QUEUE` (default `juggernaut`) keeps our steps apart from other Dagster
  code on the same broker; workers must listen on it (`-q`).

Why Celery: a run carries a batch of many tasks, so what outgrows one machine is the steps,
not the runs. `celery_executor` adds machines by starting workers (`dagster-celery worker
start`, see `deploy/celery.yaml`), with no cluster and no change to the code, on the Redis or
RabbitMQ an operator already has. Launchers that start a pod or container per run
(`K8sRunLauncher`, `DockerRunLauncher`) only move the run's process; in Kubernetes
(deploy/helm) the runs are pods of K8sRunLauncher and their steps still go to the workers.

What every run worker and Celery worker must share:
- the Dagster instance: PostgreSQL storage (`deploy/dagster.celery.yaml`, `DAGSTER_PG_URL`);
  a worker records the step's events into the run through it;
- the governance database (`JUGGERNAUT_DATABASE_URL`): claims, leases, fencing and outcomes
  live there; a worker without it would fall back to its own SQLite file;
- storage for what tasks produce: asset values under `JUGGERNAUT_ASSETS_DIR` (any fsspec URL,
  e.g. `s3://bucket/assets`, through UPath) and file artifacts under
  `JUGGERNAUT_ARTIFACTS_DIR` (`s3://bucket/artifacts`, or a volume mounted at the same path
  everywhere: the verifiers and the audit re-read them; see `lib/artifact_store.py`);
- the same code and environment (one image): the worker rebuilds the job from the run's code
  origin (`juggernaut_assets.definitions`) and binds resources from its own environment.

A worker killed mid-step: dagster-celery's step task keeps Celery's default early
acknowledgement, so Celery never runs that step again. Its tasks are not lost: the step's
heartbeat stops, `new_tasks_sensor`'s reaper releases them once their lease is stale
(`tasks/reap.py`), terminates and fails the run, and the tasks go out again in new batches. The
terminated run revokes its step; a live worker marks the revoked (still PENDING) step REVOKED in
the result backend, and the run's process ends. Prefetch is disabled (Redis brokers), so a
worker never holds a step it has not started.

The lease also bounds how long a run's step may wait for a worker: a run that has not taken its
batch within the lease is taken for dead. So workers import the code location when they start
(`imports` in deploy/celery.yaml), and `JUGGERNAUT_MAX_EXECUTOR_RUNS` stays at most the workers'
slots (workers x `--concurrency`), so a step never queues behind busy workers.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any

import dagster as dg

EXECUTOR_ENV = "JUGGERNAUT_EXECUTOR"
BROKER_ENV = "JUGGERNAUT_CELERY_BROKER_URL"
BACKEND_ENV = "JUGGERNAUT_CELERY_BACKEND_URL"
QUEUE_ENV = "JUGGERNAUT_CELERY_QUEUE"
DEFAULT_QUEUE = "juggernaut"


class ExecutorKind(StrEnum):
    IN_PROCESS = "in_process"
    CELERY = "celery"


def executor_kind() -> ExecutorKind:
    """`JUGGERNAUT_EXECUTOR` as a member; an unknown value is an error that lists the choices."""
    value = (os.environ.get(EXECUTOR_ENV) or ExecutorKind.IN_PROCESS.value).strip().lower()
    try:
        return ExecutorKind(value.replace("-", "_"))
    except ValueError:
        choices = ", ".join(k.value for k in ExecutorKind)
        raise ValueError(f"{EXECUTOR_ENV}={value!r} is not one of: {choices}") from None


def celery_queue() -> str:
    return os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE


def celery_app_settings() -> dict[str, Any]:
    """Celery settings shared by the run worker's client and the workers (`deploy/celery.yaml`
    repeats them): our queue, and no prefetch, so a worker that dies holds no unstarted step."""
    return {
        "task_default_queue": celery_queue(),
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        "broker_connection_retry_on_startup": True,
        "result_expires": 24 * 3600,
    }


def celery_executor_config() -> dict[str, Any]:
    """The `celery_executor` configuration; URLs stay `{"env": NAME}` references, resolved in
    each process that uses them."""
    missing = [name for name in (BROKER_ENV, BACKEND_ENV) if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"{EXECUTOR_ENV}=celery needs {' and '.join(missing)} (broker: e.g. "
            "redis://host:6379/0 or amqp://user@host:5672//; result backend: the same Redis URL, "
            "or rpc:// with RabbitMQ), set alike for the daemon and every worker"
        )
    return {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV},
        "config_source": celery_app_settings(),
    }


def batch_executor() -> dg.ExecutorDefinition:
    """The executor of `execute_tasks`, chosen by `JUGGERNAUT_EXECUTOR` (see the module)."""
    if executor_kind() is ExecutorKind.IN_PROCESS:
        return dg.in_process_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_executor_config(), name="celery")
