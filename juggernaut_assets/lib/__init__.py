"""Pure logic over polars frames: no I/O, no Dagster."""
