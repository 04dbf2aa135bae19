"""The one place the `Definitions` object is built: assets, checks, jobs, sensors, resources."""

from __future__ import annotations

import os

import dagster as dg

from juggernaut_assets import settings
from juggernaut_assets.assets.experiment_progress import (
    experiment_decisions,
    experiment_decisions_sensor,
    experiments_job,
    experiments_schedule,
)
from juggernaut_assets.assets.experiments import experiment_metrics
from juggernaut_assets.assets.expired_domains import expired_domains
from juggernaut_assets.assets.governance import EXTERNAL_TABLES
from juggernaut_assets.assets.market_trends import (
    market_trends,
    market_trends_job,
    market_trends_schedule,
    trend_scores,
)
from juggernaut_assets.assets.task_audit import (
    task_completion_audit,
    task_completion_audit_job,
    task_completion_audit_schedule,
)
from juggernaut_assets.assets.task_runs import task_runs
from juggernaut_assets.jobs.execute_tasks import execute_tasks
from juggernaut_assets.jobs.pull_requests import settle_pull_requests
from juggernaut_assets.lib.sources.rdap import BOOTSTRAP_URL as RDAP_BOOTSTRAP_URL
from juggernaut_assets.lib.ui_text import ui_description
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.http_sources import HttpSources
from juggernaut_assets.resources.llm import (
    DEFAULT_API_URL,
    DEFAULT_DAILY_BUDGET_USD,
    DEFAULT_MODEL,
    LlmResource,
)
from juggernaut_assets.resources.polars_io import PolarsParquetIOManager
from juggernaut_assets.resources.registrar import DEFAULT_URL as REGISTRAR_URL
from juggernaut_assets.resources.registrar import NameComRegistrar
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.resources.task_tools import (
    DEFAULT_EMAIL_DAILY_CAP,
    DEFAULT_MAX_BODY_BYTES,
    TaskToolsResource,
)
from juggernaut_assets.sensors.audit_refresh import task_audit_after_runs_sensor
from juggernaut_assets.sensors.new_tasks import new_tasks_sensor
from juggernaut_assets.sensors.pr_state import pr_state_sensor
from juggernaut_assets.sensors.scan_runs import SCAN_RUN_SENSORS
from juggernaut_assets.sensors.scan_tasks import scan_tasks_sensor
from juggernaut_assets.sensors.table_observations import governance_tables_sensor
from juggernaut_assets.sensors.trend_followers import trend_followers_job, trend_followers_sensor


def _database_url() -> str | dg.EnvVar:
    """Credentials stay in the environment: bind the variable, not its value."""
    for name in ("JUGGERNAUT_DATABASE_URL", "DATABASE_URL"):
        if os.environ.get(name):
            return dg.EnvVar(name)
    return settings.default_database_url()


def _optional_env(name: str) -> dg.EnvVar | None:
    """Bind a secret only when it is set; the resource then reports what is missing."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def _llm_key() -> dg.EnvVar | None:
    """`JUGGERNAUT_LLM_API_KEY`, else `OPENROUTER_API_KEY`: bind whichever is set."""
    for name in ("JUGGERNAUT_LLM_API_KEY", "OPENROUTER_API_KEY"):
        if os.environ.get(name):
            return dg.EnvVar(name)
    return None


def _queue() -> TaskQueueResource:
    """Queue sizes are tuning, not secrets: read once when the definitions load."""
    names = {
        "batch_size": "JUGGERNAUT_BATCH_SIZE",
        "max_tasks_per_tick": "JUGGERNAUT_MAX_TASKS_PER_TICK",
        "max_executor_runs": "JUGGERNAUT_MAX_EXECUTOR_RUNS",
        "run_idle_seconds": "JUGGERNAUT_RUN_IDLE_SECONDS",
        "claim_more": "JUGGERNAUT_RUNS_CLAIM_MORE",
    }
    return TaskQueueResource(**{k: os.environ[v] for k, v in names.items() if os.environ.get(v)})


RESOURCES = {
    "governance_db": GovernanceDB(
        url=_database_url(), readonly_url=_optional_env("JUGGERNAUT_READONLY_DATABASE_URL")
    ),
    "io_manager": PolarsParquetIOManager(base_path=settings.assets_dir()),
    "task_queue": _queue(),
    "task_tools": TaskToolsResource(
        slack_webhook_url=_optional_env("SLACK_WEBHOOK_URL"),
        http_allowed_hosts=settings.env_list("JUGGERNAUT_HTTP_ALLOWED_HOSTS"),
        http_credentials=_optional_env("JUGGERNAUT_HTTP_CREDENTIALS"),
        http_max_body_bytes=int(
            os.environ.get("JUGGERNAUT_HTTP_MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES
        ),
        search_url=_optional_env("JUGGERNAUT_SEARCH_URL"),
        smtp_url=_optional_env("JUGGERNAUT_SMTP_URL"),
        smtp_username=_optional_env("JUGGERNAUT_SMTP_USERNAME"),
        smtp_password=_optional_env("JUGGERNAUT_SMTP_PASSWORD"),
        email_from=os.environ.get("JUGGERNAUT_EMAIL_FROM") or None,
        email_daily_cap=int(
            os.environ.get("JUGGERNAUT_EMAIL_DAILY_CAP") or DEFAULT_EMAIL_DAILY_CAP
        ),
        email_unsubscribe=settings.env_list("JUGGERNAUT_EMAIL_UNSUBSCRIBE"),
        smtp_ca_file=os.environ.get("JUGGERNAUT_SMTP_CA_FILE") or None,
        smtp_allow_plaintext_loopback=os.environ.get("JUGGERNAUT_SMTP_ALLOW_PLAINTEXT_LOOPBACK", "")
        .strip()
        .lower()
        in {"1", "true", "yes"},
    ),
    "github": GitHubResource(
        token=_optional_env("GITHUB_TOKEN"),
        api_url=os.environ.get("JUGGERNAUT_GITHUB_API_URL", "https://api.github.com"),
        graphql_url=os.environ.get("JUGGERNAUT_GITHUB_GRAPHQL_URL") or None,
        allowed_repos=settings.env_list("JUGGERNAUT_GITHUB_REPOS"),
        automerge_repos=settings.env_list("JUGGERNAUT_AUTOMERGE_REPOS"),
        merge_method=os.environ.get("JUGGERNAUT_GITHUB_MERGE_METHOD") or "squash",  # type: ignore[arg-type]
        pr_max_age_hours=float(os.environ.get("JUGGERNAUT_PR_MAX_AGE_HOURS") or 168),
    ),
    "llm": LlmResource(
        api_url=os.environ.get("JUGGERNAUT_LLM_API_URL") or DEFAULT_API_URL,
        api_key=_llm_key(),
        model=os.environ.get("JUGGERNAUT_LLM_MODEL") or DEFAULT_MODEL,
        daily_budget_usd=float(
            os.environ.get("JUGGERNAUT_LLM_DAILY_BUDGET_USD") or DEFAULT_DAILY_BUDGET_USD
        ),
    ),
    "registrar": NameComRegistrar(
        url=os.environ.get("JUGGERNAUT_REGISTRAR_URL") or REGISTRAR_URL,
        username=_optional_env("NAMECOM_USERNAME"),
        token=_optional_env("NAMECOM_TOKEN"),
        spend_limit_usd_per_day=float(os.environ.get("JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY") or 0),
        forsale_target=os.environ.get("JUGGERNAUT_FORSALE_TARGET") or None,
        rdap_bootstrap_url=os.environ.get("JUGGERNAUT_RDAP_BOOTSTRAP_URL") or RDAP_BOOTSTRAP_URL,
    ),
    "http_sources": HttpSources(
        mode=os.environ.get("JUGGERNAUT_SOURCE_MODE", "live"),
        github_token=_optional_env("GITHUB_TOKEN"),
        github_api_url=os.environ.get("JUGGERNAUT_GITHUB_API_URL", "https://api.github.com"),
        contact=os.environ.get("JUGGERNAUT_HTTP_CONTACT") or None,
    ),
}

ASSETS = [
    *EXTERNAL_TABLES,
    task_runs,
    task_completion_audit,
    experiment_metrics,
    experiment_decisions,
    market_trends,
    trend_scores,
    expired_domains,
]


def _ui_spec(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The docstring as the catalog shows it: plain text (the catalog does not render markdown)."""
    return spec.replace_attributes(description=ui_description(spec.description))


defs = dg.Definitions(
    assets=dg.map_asset_specs(_ui_spec, ASSETS),
    asset_checks=[],
    jobs=[
        execute_tasks,
        settle_pull_requests,
        task_completion_audit_job,
        experiments_job,
        market_trends_job,
        trend_followers_job,
    ],
    sensors=[
        new_tasks_sensor,
        pr_state_sensor,
        task_audit_after_runs_sensor,
        scan_tasks_sensor,
        *SCAN_RUN_SENSORS,
        trend_followers_sensor,
        experiment_decisions_sensor,
        governance_tables_sensor,
    ],
    schedules=[experiments_schedule, market_trends_schedule, task_completion_audit_schedule],
    resources=RESOURCES,
)
