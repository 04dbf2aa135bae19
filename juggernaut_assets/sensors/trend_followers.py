"""`trend_followers_sensor`: when a `market_trends` partition lands, recompute what follows it.

One run of `trend_scores` → `expired_domains` per new `market_trends` materialisation. The run
key names the materialising run and partition, so a retried tick launches nothing twice.
"""

import dagster as dg

from juggernaut_assets.lib.ui_text import ui_description

trend_followers_job = dg.define_asset_job(
    "trend_followers_job",
    selection=dg.AssetSelection.assets("trend_scores", "expired_domains"),
    description="Trend scores across every stored day, then the scored domain candidates.",
)


@dg.asset_sensor(
    asset_key=dg.AssetKey("market_trends"),
    job=trend_followers_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=ui_description(__doc__),
)
def trend_followers_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """One run request per `market_trends` materialisation (see the module docstring)."""
    partition = asset_event.dagster_event.partition if asset_event.dagster_event else None
    yield dg.RunRequest(
        run_key=f"market_trends:{asset_event.run_id}:{partition or ''}",
        tags={"juggernaut/trigger": f"market_trends {partition or ''}".strip()},
    )
