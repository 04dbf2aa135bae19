"""What an operator sees in the Dagster UI, read in Debian's Chromium driven by Playwright.

One `dagster-webserver` serves a fresh instance on which a few tasks really ran (see
`tests/browser_support.py`): a completed analysis, a SQL task that failed, one blocked on it,
and a scan that materialised `task_completion_audit`. The tests navigate, click and read text
as a person would; the GraphQL API the UI itself uses backs up what the page must show. On a
failure the page's screenshot and the webserver's log are saved (see `artifacts_dir`).

Without `/usr/bin/chromium` (`scripts/ensure-chromium` installs it) the tests are skipped
locally and fail under `CI=true`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from juggernaut_assets.cli import main as juggernaut
from tests import browser_support as ui
from tests.queue_driver import task_row

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the `browser` fixture reports it: a skip locally, a failure under CI
    expect = sync_playwright = None

CHROMIUM = Path(os.environ.get("JUGGERNAUT_CHROMIUM", "/usr/bin/chromium"))
TIMEOUT_MS = 15_000
READ_TIMEOUT_MS = 5_000
"""How long a page may take to show a text once it has loaded."""
LINEAGE = ["governance_tasks", "task_runs", "task_artifacts", "task_completion_audit"]
"""The path from the queue to the audit: task → what it produced → the audit of it."""

pytestmark = pytest.mark.browser


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true; run scripts/ensure-chromium)")
    pytest.skip(reason)


@dataclass(frozen=True)
class Served:
    url: str
    db_url: str
    tasks: ui.SeededTasks
    log: Path
    env: dict[str, str]

    def task_page(self, task_id: str) -> str:
        """The page `juggernaut tasks show ID` links, as an operator gets it."""
        shown = CliRunner().invoke(juggernaut, ["tasks", "show", task_id, "--json"], env=self.env)
        assert shown.exit_code == 0, shown.output
        page = json.loads(shown.output)["dagster_page"]
        assert page.startswith(self.url), page
        return page


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The tasks carried out on a `DAGSTER_HOME` instance, and the webserver serving it."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing")
    base = tmp_path_factory.mktemp("browser")
    port = ui.free_port()
    url = f"http://127.0.0.1:{port}"
    db_url = f"sqlite:///{base / 'governance.db'}"
    env = ui.environment(base / "dagster_home", base / "data", db_url, url)
    ui.prepare_home(base / "dagster_home", env)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            tasks = ui.seed_and_run(instance, db_url)
    log = base / "webserver.log"
    with ui.webserver(env, port, log) as served_url:
        yield Served(served_url, db_url, tasks, log, env)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    if sync_playwright is None:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served: Served, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context per test; when the test failed, its last page's screenshot and
    the webserver's log are saved (the session counts the failure before teardown runs)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    ui.clear_evidence(request.node.name)
    failed_before = request.session.testsfailed
    yield tab
    if request.session.testsfailed > failed_before:
        shot = ui.save_evidence(context.pages[-1], request.node.name, served.log)
        print(f"browser evidence of {request.node.name}: {shot}")
    context.close()


def _heading_is(page: Any, asset: str) -> None:
    """The asset page of `asset` is open (its URL, and its overview with the lineage lists)."""
    expect(page).to_have_url(re.compile(rf"/assets/{asset}(\?|$)"))
    expect(page.get_by_text("Downstream assets", exact=True)).to_be_visible()


def _follow_downstream(page: Any, asset: str) -> None:
    """Click `asset` in the open asset page's "Downstream assets" list."""
    section = page.get_by_text("Downstream assets", exact=True).locator("xpath=..")
    section.locator(f"a[href='/assets/{asset}']").click()
    _heading_is(page, asset)


def test_lineage_graph_leads_from_the_task_queue_through_artifacts_to_the_audit(page, served):
    page.goto(f"{served.url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    selection = page.get_by_label("Search and filter assets")
    selection.focus()
    page.keyboard.type(f'3+key:"{LINEAGE[-1]}"')
    page.keyboard.press("Enter")
    for group in ("governance_db", "tasks"):
        collapsed = page.locator("foreignObject.group").filter(
            has=page.get_by_text(group, exact=True)
        )
        collapsed.first.click()
    page.reload()  # the graph is laid out to fit the window on load
    graph = page.locator("svg foreignObject")
    expect(graph.get_by_text("task_artifacts", exact=True)).to_be_visible()
    path = set(itertools.pairwise(LINEAGE))
    geometry, edges = ui.graph_edges(page, LINEAGE, until=path)
    labels = [node["label"] for node in geometry["nodes"]]
    for asset in LINEAGE:
        assert any(ui.shown_as(label, asset) for label in labels), f"{asset} not in {labels}"
    assert path <= edges, f"the graph draws {sorted(edges)}, missing {path - edges}: {geometry}"

    graph.get_by_text("governance_tasks", exact=True).click()
    page.get_by_role("link", name="View in Asset Catalog").click()
    _heading_is(page, LINEAGE[0])
    for asset in LINEAGE[1:]:
        _follow_downstream(page, asset)

    nodes = ui.graphql(served.url, ASSET_DEPENDENCIES)["assetNodes"]
    upstream = {
        "/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
        for n in nodes
    }
    for parent, child in path:
        assert parent in upstream[child], f"{child} does not depend on {parent} in the API"


def test_completed_task_page_links_to_the_materialisation_its_scan_produced(page, served):
    tasks = served.tasks
    page.goto(served.task_page(tasks.scan))
    expect(page.get_by_text("Audit the queue").first).to_be_visible()
    expect(page.get_by_text(re.compile(rf"^Partition {tasks.scan} materialized"))).to_be_visible()
    summary = f"materialised task_completion_audit in run {tasks.scan_run_id}"
    expect(page.get_by_text(summary)).to_be_visible()
    [link] = ui.artifact_urls(served.db_url, tasks.scan)
    assert "/assets/task_completion_audit?" in link, link
    with page.context.expect_page() as opened:
        page.get_by_role("link", name=link, exact=True).click()
    audit = opened.value
    expect(audit).to_have_url(re.compile(r"/assets/task_completion_audit\?"))
    shown = audit.get_by_text(re.compile(r"^Materialized in run"))
    expect(shown).to_contain_text(tasks.scan_run_id[:8])
    assert tasks.audit_run_id[:8] not in shown.inner_text(), "the link opened the latest event"
    expect(audit.get_by_text("Follow-up of the broken report").first).to_be_visible()
    expect(audit.get_by_text("blocked_dependency").first).to_be_visible()
    audit.close()

    page.goto(served.task_page(tasks.completed))
    expect(page.get_by_text(re.compile(r"^query returned 2 row\(s\)"))).to_be_visible()
    preview = page.get_by_role("table").filter(has=page.get_by_text("task_type", exact=True))
    expect(preview.get_by_text("database", exact=True).first).to_be_visible()


def test_failed_task_page_shows_its_reason(page, served):
    """The task's page opens on its latest event, an observation: the reason shows at once."""
    task = served.tasks.failed
    reason = task_row(served.db_url, task).error_message
    assert reason, "the failed task has no error_message in the database"

    page.goto(served.task_page(task))
    try:
        expect(_event_detail(page)).to_contain_text(reason, timeout=READ_TIMEOUT_MS)
    except AssertionError as exc:
        exc.add_note(f"the task's observation in the GraphQL API: {_observed(served, task)}")
        raise
    expect(_event_detail(page)).to_contain_text("failed")
    expect(page.get_by_text(re.compile(r"^Partition is"))).to_be_visible()


def test_failed_task_is_found_in_the_events_tab_by_its_id(page, served):
    """Without the link: the events tab's partition filter finds the task by the start of its id."""
    task = served.tasks.failed
    page.goto(f"{served.url}/assets/task_runs?view=events")
    # Filter once the list has loaded: Dagster's events tab merges a load still in flight
    # into the filtered list, as a person who reads the page first never sees.
    expect(_event_detail(page)).to_be_visible()
    page.get_by_role("button", name=re.compile("Filter")).click()
    filters = page.get_by_role("dialog")
    filters.get_by_role("menuitem", name=re.compile("Partition")).click()
    page.keyboard.type(task[:8])
    filters.get_by_role("menuitem", name=re.compile(task)).click()
    page.keyboard.press("Escape")
    expect(page.get_by_text(re.compile(r"^Partition is"))).to_be_visible()
    expect(_event_detail(page)).to_contain_text(task_row(served.db_url, task).error_message)


def _event_detail(page) -> Any:
    """The open event's pane of the events tab (its heading names the partition)."""
    return page.get_by_text(re.compile(r"^Partition \S+ (observed|materialized)")).locator(
        "xpath=ancestor::div[.//text()[normalize-space()='Metadata']][1]"
    )


def _observed(served: Served, task: str) -> dict[str, Any]:
    """The metadata of the task's latest observation as the API returns it (for the error)."""
    data = ui.graphql(served.url, OBSERVATION, {"key": {"path": ["task_runs"]}, "p": task})
    events = data["assetOrError"]["assetObservations"]
    return {e["label"]: e.get("text") for e in events[0]["metadataEntries"]} if events else {}


def test_blocked_task_page_names_its_failed_dependency_and_links_it(page, served):
    task = served.tasks.blocked
    reason = task_row(served.db_url, task).error_message
    assert reason and served.tasks.failed in reason, reason
    partitions = ui.graphql(served.url, PARTITION_KEYS, {"key": {"path": ["task_runs"]}})
    assert task in partitions["assetNodeOrError"]["partitionKeys"], (
        "the blocked task has no page: no partition of task_runs (no event reports it)"
    )
    page.goto(served.task_page(task))
    expect(_event_detail(page)).to_contain_text(reason, timeout=READ_TIMEOUT_MS)
    expect(_event_detail(page)).to_contain_text("blocked")

    page.get_by_role("link", name=served.tasks.failed, exact=True).click()
    expect(page).to_have_url(re.compile(rf"partition={served.tasks.failed}"))
    failed_reason = task_row(served.db_url, served.tasks.failed).error_message
    expect(_event_detail(page)).to_contain_text(failed_reason, timeout=READ_TIMEOUT_MS)


ASSET_DEPENDENCIES = "query { assetNodes { assetKey { path } dependencyKeys { path } } }"
PARTITION_KEYS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionKeys } }
}
"""
OBSERVATION = """
query ($key: AssetKeyInput!, $p: String!) {
  assetOrError(assetKey: $key) { ... on Asset {
    assetObservations(partitions: [$p], limit: 1) {
      metadataEntries { label ... on TextMetadataEntry { text } }
    }
  } }
}
"""
