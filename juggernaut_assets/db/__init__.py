"""The governance database: models, engines and migrations."""
