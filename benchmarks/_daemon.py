"""A real `dagster-daemon` for benchmarks and end-to-end tests.

The instance is migrated first (a daemon and another command stamping a fresh instance at the
same moment break it, see shared/dagster-notes.md), then the daemon runs in its own session so
that stopping it also ends the code server and run workers it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def running_daemon(env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `dagster-daemon` on this project's workspace with `env`; its stderr goes to `log`."""
    subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True
    )
    with open(log, "w") as stderr:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT / "workspace.yaml")],
            cwd=PROJECT,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            yield daemon
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=20)
            # The code server and the run workers it started can outlive the daemon.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
