"""Notebooks are committed without outputs, and the task notebook runs against a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from juggernaut_assets.demo import seed

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_has_no_outputs(path):
    notebook = json.loads(path.read_text())
    assert notebook["nbformat"] == 4
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def _run_code_cells(path: Path) -> dict[str, object]:
    namespace: dict[str, object] = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(path), "exec"), namespace)
    return namespace


def test_tasks_notebook_runs_on_the_demo_data(governance_db, db_url, monkeypatch):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    seed(governance_db.engine)
    namespace = _run_code_cells(
        Path(__file__).resolve().parent.parent / "notebooks" / "tasks.ipynb"
    )
    assert namespace["tasks"].height == namespace["audit"].height > 0


def test_experiments_notebook_shows_statistics_and_decisions(governance_db, db_url, monkeypatch):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    seed(governance_db.engine)
    namespace = _run_code_cells(
        Path(__file__).resolve().parent.parent / "notebooks" / "experiments.ipynb"
    )
    metrics = namespace["metrics"]
    assert set(metrics["variant"].drop_nulls()) == {"grey", "green"}
    assert namespace["verdicts"]["decision"].to_list()[0] in {"continue", "conclude"}


def test_trends_notebook_reads_the_materialised_assets(governance_db, db_url, monkeypatch):
    import dagster as dg

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
    namespace = _run_code_cells(
        Path(__file__).resolve().parent.parent / "notebooks" / "trends_and_domains.ipynb"
    )
    assert namespace["domains"].height > 0
    assert namespace["acquisitions"]["status"].to_list()
