"""Shared fixtures: a migrated governance database on SQLite and on a real PostgreSQL server.

PostgreSQL is taken from `JUGGERNAUT_TEST_PG_URL` (default: the local server with trust auth,
database `test`). Each pytest worker creates its own database on that server and drops it at
the end. Without a server the PostgreSQL cases are skipped locally and fail under `CI=true`.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import metadata
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.http_sources import HttpSources
from juggernaut_assets.resources.llm import LlmResource
from juggernaut_assets.resources.polars_io import PolarsParquetIOManager
from juggernaut_assets.resources.registrar import NameComRegistrar
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from tests.fakes.http_server import LocalHTTPServer

# Before any test module imports `definitions` (whose resources bind the environment at import):
# public sources answer from recordings, local state goes to a temporary directory, and no
# database from the developer's environment is ever bound.
os.environ["JUGGERNAUT_SOURCE_MODE"] = "replay"
os.environ["JUGGERNAUT_DATA_DIR"] = tempfile.mkdtemp(prefix="juggernaut-tests-")
for _name in (
    "JUGGERNAUT_DATABASE_URL",
    "DATABASE_URL",
    "GITHUB_TOKEN",
    "SLACK_WEBHOOK_URL",
    "JUGGERNAUT_LLM_API_KEY",
    "OPENROUTER_API_KEY",
    "JUGGERNAUT_SMTP_URL",
    "JUGGERNAUT_SMTP_PASSWORD",
    "NAMECOM_USERNAME",
    "NAMECOM_TOKEN",
    "JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY",
):
    os.environ.pop(_name, None)

PG_SERVER_URL = os.environ.get(
    "JUGGERNAUT_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def _pg_admin_engine() -> sa.Engine:
    return sa.create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this pytest worker."""
    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is not reachable at {make_url(PG_SERVER_URL).host}: {exc.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"ja_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    make_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with make_engine(url).begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty governance database; every test using it runs on both engines."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'governance.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("pg_database_url")
    _truncate_all(url)
    return url


@pytest.fixture
def governance_db(db_url: str) -> GovernanceDB:
    return GovernanceDB(url=db_url)


@pytest.fixture(autouse=True)
def _local_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's files (artifacts, asset values) inside its own tmp_path."""
    monkeypatch.setenv("JUGGERNAUT_DATA_DIR", str(tmp_path / "data"))
    for name in ("GITHUB_TOKEN", "JUGGERNAUT_LLM_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance (SQLite storage in a temp dir)."""
    with dg.instance_for_test() as inst:
        yield inst


def platform_resources(db_url: str, **overrides: object) -> dict[str, object]:
    """The platform's resources bound to a test database (files go to JUGGERNAUT_DATA_DIR)."""
    return {
        "governance_db": GovernanceDB(url=db_url),
        "task_queue": TaskQueueResource(batch_size=2, max_tasks_per_tick=100, run_idle_seconds=0),
        "task_tools": TaskToolsResource(),
        "github": GitHubResource(),
        "llm": LlmResource(),
        "registrar": NameComRegistrar(),
        "io_manager": PolarsParquetIOManager(base_path=os.environ["JUGGERNAUT_DATA_DIR"]),
        "http_sources": HttpSources(mode="replay", seconds_between_requests=0.0),
        **overrides,
    }


@pytest.fixture
def resources(db_url: str) -> dict[str, object]:
    return platform_resources(db_url)


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    """A local HTTP server on 127.0.0.1 with programmable replies."""
    with LocalHTTPServer() as server:
        yield server


CHAOS_REPORT = Path(__file__).resolve().parent.parent / ".local" / "reports" / "chaos.txt"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller, not an xdist worker
        CHAOS_REPORT.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the chaos test's counts (written by whichever worker ran it) with the summary."""
    if CHAOS_REPORT.is_file():
        terminalreporter.write_sep("-", "chaos test counts")
        terminalreporter.write(CHAOS_REPORT.read_text())
