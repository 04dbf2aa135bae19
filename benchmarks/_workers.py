"""Celery workers for `execute_tasks` as separate processes (`JUGGERNAUT_EXECUTOR=celery`).

    with celery_workers(2, env) as workers:
        ...  # the daemon's runs hand their batches to these workers

Each worker is a command an operator runs on a machine (`Command`: Dagster's `dagster-celery
worker start -y deploy/celery.yaml`, or the same worker as a plain `celery` command line, as in
deploy/helm/celery-workers.yaml), in its own session, so `kill()` ends the worker and its pool
processes together, like a machine lost; `stop()` is a warm shutdown.
`env` is the platform's environment: the broker and backend URLs, the queue, the databases and
`DAGSTER_HOME`, the same as the daemon's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from juggernaut_assets.jobs.executors import BACKEND_ENV, BROKER_ENV, DEFAULT_QUEUE, QUEUE_ENV

PROJECT = Path(__file__).resolve().parent.parent
CELERY_CONFIG = PROJECT / "deploy" / "celery.yaml"
BIN = Path(sys.executable).parent


@dataclass
class CeleryWorker:
    """One worker: its process (and, in its session, the Celery worker and pool processes)."""

    name: str
    process: subprocess.Popen
    log: Path

    @property
    def hostname(self) -> str:
        """The node name Celery gives it (`name@host`), as recorded in the run's events."""
        return f"{self.name}@{socket.gethostname()}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: no shutdown, no acknowledgement."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, broker_url: str, timeout: float = 30) -> None:
        """Warm shutdown through the broker (the worker finishes the step it runs, as on
        `dagster-celery worker terminate`), then SIGKILL if it lingers. (A SIGTERM to the
        process group would also reach the pool process and cut its step short.)"""
        from celery import Celery

        if self.alive():
            app = Celery(broker=broker_url)
            try:
                app.control.shutdown(destination=[self.hostname])
            finally:
                app.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


class Command(StrEnum):
    """The two ways an operator starts a worker (README, "Running N workers")."""

    DAGSTER_CELERY = "dagster-celery"
    """`dagster-celery worker start -y deploy/celery.yaml`: Dagster's CLI, settings in YAML."""
    CELERY = "celery"
    """`celery -A dagster_celery.app worker …`: the same worker with Celery's own options and
    `CELERY_BROKER_URL`/`CELERY_RESULT_BACKEND`; the Kubernetes manifest runs this one, so that
    the worker is the container's first process and a SIGTERM is its warm shutdown."""


def worker_command(
    env: Mapping[str, str], name: str, concurrency: int, command: Command
) -> list[str]:
    queue = env.get(QUEUE_ENV) or DEFAULT_QUEUE
    if command is Command.DAGSTER_CELERY:
        return [
            str(BIN / "dagster-celery"),
            *("worker", "start", "-A", "dagster_celery.app", "-y", str(CELERY_CONFIG)),
            *("-q", queue, "-n", name, "--loglevel", "INFO"),
            "--",
            f"--concurrency={concurrency}",
        ]
    return [
        str(BIN / "celery"),
        *("-A", "dagster_celery.app", "worker", "-Q", queue, "-n", f"{name}@%h"),
        *("--prefetch-multiplier=1", "--disable-prefetch", "-I", "juggernaut_assets.definitions"),
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
    ]


def start_worker(
    env: Mapping[str, str],
    name: str,
    log_dir: Path,
    concurrency: int = 1,
    command: Command = Command.DAGSTER_CELERY,
) -> CeleryWorker:
    """Start a worker on the platform's queue with the deployed settings."""
    # `dagster-celery` runs `celery` from PATH: the same environment's.
    worker_env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    if command is Command.CELERY:
        worker_env["CELERY_BROKER_URL"] = env[BROKER_ENV]
        worker_env["CELERY_RESULT_BACKEND"] = env.get(BACKEND_ENV) or env[BROKER_ENV]
    log = log_dir / f"{name}.log"
    process = subprocess.Popen(
        worker_command(env, name, concurrency, command),
        cwd=PROJECT,
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115  (the child keeps it open)
        start_new_session=True,
    )
    return CeleryWorker(name, process, log)


def wait_ready(env: Mapping[str, str], workers: list[CeleryWorker], timeout: float = 90) -> None:
    """Until every worker answers a ping through the broker (it consumes from then on)."""
    from celery import Celery

    app = Celery(broker=env[BROKER_ENV])
    waiting = {w.hostname: w for w in workers}
    deadline = time.monotonic() + timeout
    try:
        while waiting:
            for hostname, worker in list(waiting.items()):
                if not worker.alive():
                    tail = worker.log.read_text()[-2000:]
                    raise RuntimeError(f"celery worker {hostname} exited:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"celery workers not ready: {sorted(waiting)}")
            for reply in app.control.ping(destination=list(waiting), timeout=1.0) or []:
                for hostname in reply:
                    waiting.pop(hostname, None)
    finally:
        app.close()


@contextlib.contextmanager
def celery_workers(
    n: int,
    env: Mapping[str, str],
    *,
    concurrency: int = 1,
    log_dir: Path | None = None,
    commands: Sequence[Command] = (Command.DAGSTER_CELERY,),
) -> Iterator[list[CeleryWorker]]:
    """Start `n` workers (the i-th with `commands[i % len(commands)]`), wait until each answers,
    yield them; stop them all afterwards."""
    if not env.get(BROKER_ENV):
        raise ValueError(f"celery_workers needs {BROKER_ENV} in env (the daemon's broker)")
    tag = uuid.uuid4().hex[:6]
    logs = log_dir or Path(env.get("DAGSTER_HOME") or ".")
    logs.mkdir(parents=True, exist_ok=True)
    workers: list[CeleryWorker] = []
    try:
        for i in range(n):
            command = commands[i % len(commands)]
            name = f"juggernaut-{i + 1}-{tag}"
            workers.append(start_worker(env, name, logs, concurrency, command))
        wait_ready(env, workers)
        yield workers
    finally:
        for worker in workers:
            worker.stop(env[BROKER_ENV])
