"""Sensors: what reacts to the world outside Dagster."""
