"""The one place the `Definitions` object is built: assets, checks, jobs, sensors, resources."""

from __future__ import annotations

import os

import dagster as dg

from juggernaut_assets import settings
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.polars_io import PolarsParquetIOManager


def _database_url() -> str | dg.EnvVar:
    """Credentials stay in the environment: bind the variable, not its value."""
    for name in ("JUGGERNAUT_DATABASE_URL", "DATABASE_URL"):
        if os.environ.get(name):
            return dg.EnvVar(name)
    return settings.default_database_url()


RESOURCES = {
    "governance_db": GovernanceDB(url=_database_url()),
    "io_manager": PolarsParquetIOManager(base_path=settings.assets_dir()),
}

defs = dg.Definitions(
    assets=[],
    asset_checks=[],
    jobs=[],
    sensors=[],
    schedules=[],
    resources=RESOURCES,
)
