"""The analysts' notebooks: committed without outputs, each executed against a real database and
the assets as the IO manager stores them, each plot drawn from the rows it claims to show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import matplotlib
import pytest
import sqlalchemy as sa
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from sqlalchemy.orm import Session

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, ToolCall
from juggernaut_assets.demo import seed
from tests.conftest import platform_resources
from tests.queue_driver import drain

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.fixture(autouse=True)
def _headless(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Plots render without a display, and every figure a notebook opened is closed after."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_there_is_a_notebook_for_each_analysts_question():
    assert {p.name for p in NOTEBOOKS} >= {
        "stuck_tasks.ipynb",
        "task_output.ipynb",
        "experiments.ipynb",
        "trends_and_domains.ipynb",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_has_no_outputs(path):
    notebook = json.loads(path.read_text())
    assert notebook["nbformat"] == 4
    first = notebook["cells"][0]
    assert first["cell_type"] == "markdown" and first["source"][0].startswith("# "), path.name
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def _run_code_cells(name: str) -> dict[str, object]:
    path = NOTEBOOK_DIR / name
    namespace: dict[str, object] = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(path), "exec"), namespace)
    return namespace


def _run_demo(db_url: str) -> None:
    """Seed the demo tasks and run them through the real sensor and executor job."""
    seed(make_engine(db_url))
    with dg.instance_for_test() as instance:
        assert drain(instance, platform_resources(db_url)) > 0


def _bars(figure: object, axes: int = 0, filled: bool = True) -> list[Rectangle]:
    assert isinstance(figure, Figure) and len(figure.axes) > axes
    return [
        p for p in figure.axes[axes].patches if isinstance(p, Rectangle) and p.get_fill() is filled
    ]


def _scalar(db_url: str, query: sa.Select) -> int:
    with make_engine(db_url).connect() as conn:
        return conn.execute(query).scalar_one()


def test_stuck_tasks_notebook_says_what_is_stuck_why_and_what_blocks_it(db_url, monkeypatch):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    _run_demo(db_url)
    ns = _run_code_cells("stuck_tasks.ipynb")

    tasks, stuck = ns["tasks"], ns["stuck"]
    t = GovernanceTask
    assert tasks.height == _scalar(db_url, sa.select(sa.func.count()).select_from(t))
    not_done = sa.select(sa.func.count()).where(t.status.not_in(["completed", "cancelled"]))
    assert stuck.height == _scalar(db_url, not_done) > 0
    assert set(stuck["status"]) >= {"failed", "blocked", "waiting_approval"}

    count_bars = _bars(ns["fig_states"], 0)
    assert sum(b.get_width() for b in count_bars) == tasks.height
    points = ns["fig_states"].axes[1].collections[0].get_offsets()
    assert len(points) == stuck.height

    reasons = {(s, r): n for s, r, n in ns["reasons"].select("status", "reason", "tasks").rows()}
    assert reasons[("blocked", "dependency <task> is failed")] == 1
    assert ("blocked", "step 1 of 1 (slack): SLACK_WEBHOOK_URL is not configured") in reasons
    assert sum(b.get_width() for b in _bars(ns["fig_reasons"])) == stuck.height

    blockers = ns["blockers"].rows(named=True)
    assert [(b["dependency"], b["dependency_status"], b["holds"]) for b in blockers] == [
        ("SQL that does not parse (fails with the parser's message)", "failed", 1)
    ]
    assert blockers[0]["waiting"] == ["Depends on a failing task (becomes blocked)"]


def test_task_output_notebook_counts_artifacts_per_day_and_tool_outcomes(db_url, monkeypatch):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    _run_demo(db_url)
    with Session(make_engine(db_url)) as session, session.begin():
        workflow = sa.select(GovernanceTask.id).where(GovernanceTask.task_type == "workflow")
        ran_yesterday = session.scalars(
            sa.select(TaskArtifact).where(TaskArtifact.task_id.in_(workflow))
        ).all()
        for artifact in ran_yesterday:
            artifact.created_at -= timedelta(days=1)
    yesterday = len(ran_yesterday)
    assert yesterday > 0
    ns = _run_code_cells("task_output.ipynb")

    artifacts, per_day = ns["artifacts"], ns["per_day"]
    count = sa.select(sa.func.count()).select_from(TaskArtifact)
    assert artifacts.height == _scalar(db_url, count) > yesterday
    assert len(ns["days"]) == 2
    workflow_days = per_day.filter(task_type="workflow")
    assert workflow_days["artifacts"].to_list() == [yesterday]
    assert workflow_days["day"].to_list() == [min(ns["days"])]

    filled = _bars(ns["fig_artifacts"])
    assert sum(b.get_height() for b in filled) == artifacts.height
    assert len({b.get_x() for b in filled}) == 2
    verified = sa.select(sa.func.count()).where(TaskArtifact.verified.is_(True))
    unverified_height = sum(b.get_height() for b in _bars(ns["fig_artifacts"], filled=False))
    assert unverified_height == artifacts.height - _scalar(db_url, verified)

    per_tool = {r["tool_name"]: r for r in ns["per_tool"].rows(named=True)}
    assert per_tool["slack"]["failed"] == 1 and per_tool["database"]["succeeded"] >= 1
    assert "SLACK_WEBHOOK_URL" in per_tool["slack"]["last_error"]
    tool_bars = _bars(ns["fig_tools"])
    calls = sa.select(sa.func.count()).select_from(ToolCall)
    assert sum(b.get_width() for b in tool_bars) == _scalar(db_url, calls)
    failed = sum(b.get_width() for b in tool_bars if b.get_facecolor()[0] > 0.5)
    assert failed == _scalar(db_url, sa.select(sa.func.count()).where(ToolCall.success.is_(False)))

    tasks = sa.select(sa.func.count()).select_from(GovernanceTask)
    assert ns["audit"].height == _scalar(db_url, tasks)


def test_experiments_notebook_plots_each_variants_lift_with_its_intervals(
    governance_db, db_url, monkeypatch
):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    seed(governance_db.engine)
    ns = _run_code_cells("experiments.ipynb")
    metrics, lifts = ns["metrics"], ns["lifts"]
    assert set(metrics["variant"].drop_nulls()) == {"grey", "green"}
    assert ns["verdicts"]["decision"].to_list()[0] in {"continue", "conclude"}

    assert lifts["variant"].to_list() == ["green"]
    figure = ns["fig_lift"]
    assert isinstance(figure, Figure)
    bars = [c for c in figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    fixed = next(c for c in bars if c.get_label() == "fixed-horizon 95%")
    assert list(fixed.lines[0].get_xdata()) == lifts["lift_rel"].to_list()
    (segments,) = fixed.lines[2]
    assert [tuple(s[:, 0]) for s in segments.get_segments()] == list(
        zip(lifts["ci_low"], lifts["ci_high"], strict=True)
    )
    sequential = next(c for c in bars if c.get_label().startswith("sequential"))
    (seq_segments,) = sequential.lines[2]
    (seq_low, seq_high) = seq_segments.get_segments()[0][:, 0]
    assert seq_low < lifts["ci_low"][0] < lifts["ci_high"][0] < seq_high


def test_trends_notebook_reads_the_materialised_assets_and_plots_them(
    governance_db, db_url, monkeypatch
):
    from juggernaut_assets import settings
    from juggernaut_assets.assets.expired_domains import expired_domains
    from juggernaut_assets.assets.market_trends import market_trends, trend_scores
    from juggernaut_assets.resources.http_sources import HttpSources
    from juggernaut_assets.resources.polars_io import PolarsParquetIOManager

    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    resources = {
        "http_sources": HttpSources(mode="replay", seconds_between_requests=0.0),
        "io_manager": PolarsParquetIOManager(base_path=settings.assets_dir()),
        "governance_db": governance_db,
    }
    assets = [market_trends, trend_scores, expired_domains]
    with dg.instance_for_test() as instance:
        for selection, partition in (([market_trends], "2026-11-23"), (assets[1:], None)):
            assert dg.materialize(
                assets,
                selection=selection,
                partition_key=partition,
                resources=resources,
                instance=instance,
            ).success
    ns = _run_code_cells("trends_and_domains.ipynb")
    assert ns["domains"].height > 0
    assert ns["acquisitions"]["status"].to_list()

    top_trends = ns["top_trends"]
    assert 0 < top_trends.height <= 10 and top_trends["term"].n_unique() == top_trends.height
    trend_bars = _bars(ns["fig_trends"])
    assert [b.get_width() for b in trend_bars] == top_trends["term_score"].to_list()

    scored = ns["scored"]
    assert scored.height > 0
    domain_bars = _bars(ns["fig_domains"])
    assert [b.get_width() for b in domain_bars] == scored["score"].to_list()
    assert scored["score"].to_list() == sorted(scored["score"].to_list())
