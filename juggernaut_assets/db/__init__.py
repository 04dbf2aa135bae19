"""The governance database: models, engines and migrations."""

from juggernaut_assets.db import rollups as rollups  # registers experiment_metric_sums
