"""A real Dagster instance with a few tasks carried out, and the webserver that shows it.

Used by the browser test (`test_browser_ui.py`). The data goes through the platform's own code
paths: tasks are added with `add_task`, claimed by `new_tasks_sensor` and run by the
`execute_tasks` job (`tests/queue_driver.py`), and the scan task is claimed by
`scan_tasks_sensor`, run as its asset's run and settled by the run-status sensor
(`tests/scan_driver.py`), all on a `DAGSTER_HOME` instance that `dagster-webserver` then serves.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa

from juggernaut_assets.assets.task_audit import task_completion_audit
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import TaskArtifact
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.queue_driver import drain, task_row
from tests.scan_driver import scan, scan_defs

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SeededTasks:
    """The tasks the instance shows, by the path each one took, and the audit's runs."""

    completed: str
    failed: str
    blocked: str
    scan: str
    scan_run_id: str
    """The run the scan task launched: it materialised `task_completion_audit` first."""
    audit_run_id: str
    """A later run of the audit (the latest materialisation)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def artifact_urls(db_url: str, task_id: str) -> list[str]:
    """The URIs of the artifacts the task produced, as stored in `task_artifacts`."""
    table = TaskArtifact.__table__
    with make_engine(db_url).connect() as conn:
        rows = conn.execute(sa.select(table.c.uri).where(table.c.task_id == task_id)).all()
    return [r.uri for r in rows]


def environment(home: Path, data_dir: Path, db_url: str, ui_url: str) -> dict[str, str]:
    """The variables the data build and the webserver share (links in events use `ui_url`)."""
    return {
        "DAGSTER_HOME": str(home),
        "JUGGERNAUT_DATA_DIR": str(data_dir),
        "JUGGERNAUT_DATABASE_URL": db_url,
        "JUGGERNAUT_DAGSTER_UI_URL": ui_url,
        "JUGGERNAUT_SOURCE_MODE": "replay",
    }


def prepare_home(home: Path, env: dict[str, str]) -> None:
    """A fresh instance from the deployed SQLite configuration, migrated once up front."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.sqlite.yaml", home / "dagster.yaml")
    subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    # The operator has seen the welcome dialog: it would cover the page on the first visit.
    (home / ".nux").mkdir(exist_ok=True)
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")


def seed_and_run(instance: dg.DagsterInstance, db_url: str) -> SeededTasks:
    """A completed analysis, a failing SQL task, one blocked on it, and a scan of the audit.

    The scan runs after the other three have ended, so the audit it materialises judges them;
    the audit is then materialised once more, so the scan's artifact is not the latest event.
    """
    upgrade(db_url)
    db = GovernanceDB(url=db_url)
    with db.session() as s:
        completed, _ = add_task(
            s,
            "analysis",
            {"sql": "SELECT task_type, COUNT(*) AS n FROM governance_tasks GROUP BY task_type"},
            title="Tasks by type",
        )
        failed, _ = add_task(
            s, "database", {"sql": "SELEC * FROM governance_tasks"}, title="Broken weekly report"
        )
        blocked, _ = add_task(
            s,
            "analysis",
            {"sql": "SELECT 1"},
            title="Follow-up of the broken report",
            depends_on=[failed.id],
        )
        ids = (completed.id, failed.id, blocked.id)
    resources = platform_resources(db_url)
    drain(instance, resources)
    with db.session() as s:
        audit_scan, _ = add_task(
            s, "scan", {"asset": "task_completion_audit"}, title="Audit the queue"
        )
        scan_id = audit_scan.id
    defs = scan_defs(resources)
    [scan_run] = scan(instance, defs, resources)
    audit_run = dg.materialize(
        [task_completion_audit], instance=instance, resources=resources, tags={"test": "browser"}
    )
    expected = dict(
        zip((*ids, scan_id), ("completed", "failed", "blocked", "completed"), strict=True)
    )
    states = {task_id: task_row(db_url, task_id).status for task_id in expected}
    assert states == expected, {i: task_row(db_url, i).error_message for i in expected}
    return SeededTasks(*ids, scan_id, scan_run.run_id, audit_run.run_id)


@contextmanager
def webserver(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """`dagster-webserver` on the repository's workspace; yields its base URL once it answers."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_ready(url, process, log)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def _wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    """Wait for `/server_info`, then for the code location to have loaded."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dagster-webserver exited ({process.returncode}):\n{log.read_text()}"
            )
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    else:
        raise TimeoutError(f"dagster-webserver did not answer in {STARTUP_TIMEOUT_S:.0f} s")
    while time.monotonic() < deadline:
        entries = graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
        states = [e["loadStatus"] for e in entries]
        if states and all(s == "LOADED" for s in states):
            errors = [
                e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"
            ]
            if errors:
                raise RuntimeError(f"code location failed to load: {json.dumps(errors)}")
            return
        time.sleep(0.3)
    raise TimeoutError("the code location did not load in time")


LOCATIONS = """
query { workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST a query to the webserver's GraphQL API; its `data`, or an error naming the problem."""
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def artifacts_dir() -> Path:
    """Where a failing browser test leaves its screenshot and the webserver's log
    (`JUGGERNAUT_TEST_ARTIFACTS_DIR`, default `test-artifacts/browser/` in the repository)."""
    return Path(
        os.environ.get("JUGGERNAUT_TEST_ARTIFACTS_DIR", ROOT / "test-artifacts" / "browser")
    )


def clear_evidence(name: str) -> None:
    """Remove what an earlier run of this test left, so the directory shows this run only."""
    for path in artifacts_dir().glob(f"{name}.*"):
        path.unlink()


def save_evidence(page: Any, name: str, server_log: Path) -> Path:
    """A full-page screenshot, the page's URL and the webserver's log, in `artifacts_dir()`;
    returns the screenshot's path."""
    out = artifacts_dir()
    out.mkdir(parents=True, exist_ok=True)
    shot = out / f"{name}.png"
    (out / f"{name}.url.txt").write_text(page.url + "\n")
    page.screenshot(path=str(shot), full_page=True)
    if server_log.is_file():
        shutil.copy(server_log, out / f"{name}.webserver.log")
    return shot


GRAPH_GEOMETRY = """() => {
  const box = (fo) => ({
    x: +fo.getAttribute('x'), y: +fo.getAttribute('y'),
    w: +fo.getAttribute('width'), h: +fo.getAttribute('height'),
    label: fo.textContent.trim(),
  });
  const nodes = [...document.querySelectorAll('svg foreignObject:not(.group)')]
    .map(box).filter((n) => n.label);
  const edges = [...document.querySelectorAll('svg path[marker-end]')].map((p) => {
    const numbers = (p.getAttribute('d') || '').match(/-?[0-9.]+/g) || [];
    const n = numbers.map(Number);
    return n.length >= 4 ? [n[0], n[1], n[n.length - 2], n[n.length - 1]] : null;
  }).filter(Boolean);
  return {nodes, edges};
}"""
"""The asset nodes (box and label) and the edges (start and end points) the graph has drawn."""

EDGE_SLACK = 12.0
"""How far (in graph units) an edge's end may lie from a node's side (the arrowhead's room)."""


def shown_as(label: str, name: str) -> bool:
    """The node label is this asset's name, whole or middle-truncated (`task_comple…_audit`)."""
    if "…" not in label:
        return label == name
    head, tail = label.split("…", 1)
    return name.startswith(head) and name.endswith(tail) and len(name) > len(head + tail)


def drawn_edges(geometry: dict[str, Any], names: list[str]) -> set[tuple[str, str]]:
    """Which of the named assets the rendered graph connects: an edge leaves a node's right
    side and enters another's left side (Dagster lays lineage out left to right)."""

    def node_at(x: float, y: float, side: str) -> str | None:
        for node in geometry["nodes"]:
            edge_x = node["x"] + node["w"] if side == "right" else node["x"]
            inside = node["y"] <= y <= node["y"] + node["h"]
            if inside and abs(edge_x - x) <= EDGE_SLACK:
                return next((n for n in names if shown_as(node["label"], n)), None)
        return None

    found = set()
    for x1, y1, x2, y2 in geometry["edges"]:
        source, target = node_at(x1, y1, "right"), node_at(x2, y2, "left")
        if source and target:
            found.add((source, target))
    return found


def graph_edges(
    page: Any, names: list[str], until: set[tuple[str, str]], wait_s: float = 5.0
) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """The rendered graph's geometry and the edges it draws between `names`, read again for
    up to `wait_s` until the edges include `until` (edges are drawn after the nodes)."""
    deadline = time.monotonic() + wait_s
    while True:
        geometry = page.evaluate(GRAPH_GEOMETRY)
        edges = drawn_edges(geometry, names)
        if until <= edges or time.monotonic() > deadline:
            return geometry, edges
        time.sleep(0.2)
