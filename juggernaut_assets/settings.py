"""Where the platform keeps its local state, and how the governance database URL is chosen.

Everything here is read from the environment at call time, never stored in code.
"""

from __future__ import annotations

import os
from pathlib import Path

from upath import UPath

from juggernaut_assets.lib.artifact_store import artifact_path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The local data directory (`JUGGERNAUT_DATA_DIR`, default `.local/` in the project)."""
    path = Path(os.environ.get("JUGGERNAUT_DATA_DIR", PROJECT_ROOT / ".local"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'governance.db'}"


def database_url() -> str:
    """`JUGGERNAUT_DATABASE_URL`, else `DATABASE_URL` (production's name), else embedded SQLite."""
    return (
        os.environ.get("JUGGERNAUT_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or default_database_url()
    )


def artifacts_path() -> UPath:
    """Where handlers write file artifacts (`JUGGERNAUT_ARTIFACTS_DIR`): a local directory or
    an object store URL such as `s3://bucket/prefix` (see `lib/artifact_store.py`)."""
    configured = os.environ.get("JUGGERNAUT_ARTIFACTS_DIR")
    return artifact_path(configured or data_dir() / "artifacts")


def assets_dir() -> str:
    """Base path (local directory or fsspec URL) of the polars IO manager."""
    return os.environ.get("JUGGERNAUT_ASSETS_DIR", str(data_dir() / "assets"))


def dagster_ui_url() -> str:
    """Base URL of the Dagster UI, for links in artifacts (`JUGGERNAUT_DAGSTER_UI_URL`)."""
    return os.environ.get("JUGGERNAUT_DAGSTER_UI_URL", "http://localhost:3000").rstrip("/")


def env_list(name: str) -> list[str]:
    """A comma-separated environment variable as a list (blank items dropped)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]
