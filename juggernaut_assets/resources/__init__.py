"""Dagster resources: the governance database, HTTP sources, GitHub, notifications."""
