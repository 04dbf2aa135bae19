"""Juggernaut Assets: JUGGERNAUT's revenue operations as a Dagster code location."""
