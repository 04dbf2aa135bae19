"""An IO manager that stores polars DataFrames as Parquet under a local directory or fsspec URL.

We keep polars 1.x and write this small `UPathIOManager` subclass instead of depending on
dagster-polars, so the IO layer does not pin our polars version (dagster-polars 0.27 breaks on
polars 2). Every output gets its row count, column schema and a preview as metadata.

An asset documents its columns once, in its definition (`documented_columns`): the UI's Columns
table shows them before the first materialisation, and every materialisation's column schema
carries the same descriptions beside the frame's real types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

PREVIEW_ROWS = 10
COLUMN_SCHEMA = "dagster/column_schema"

Column = tuple[pl.DataType | type[pl.DataType], str]
"""A documented column: its polars type and what it holds, for a person."""


def documented_columns(columns: Mapping[str, Column]) -> dict[str, dg.TableSchema]:
    """Definition metadata documenting an asset's columns, in their order."""
    return {
        COLUMN_SCHEMA: dg.TableSchema(
            [dg.TableColumn(name, str(dtype), text) for name, (dtype, text) in columns.items()]
        )
    }


def frame_metadata(df: pl.DataFrame, documented: dg.TableSchema | None = None) -> dict[str, Any]:
    """Row count, schema and a markdown preview of a frame, for the Dagster UI.

    The schema has the frame's own columns and types, with the descriptions `documented` gives.
    """
    described = {c.name: c.description for c in documented.columns} if documented else {}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), described.get(name))
            for name, dtype in df.schema.items()
        ]
    )
    preview = df.head(PREVIEW_ROWS)
    return {
        "dagster/row_count": df.height,
        "dagster/column_schema": schema,
        "preview": dg.MetadataValue.md(markdown_table(preview)),
    }


def markdown_table(df: pl.DataFrame) -> str:
    """A small frame as a markdown table (cells cut at 60 characters)."""
    if df.width == 0:
        return "(no columns)"
    header = "| " + " | ".join(df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = [
        "| " + " | ".join(str(v).replace("|", "\\|")[:60] for v in row) + " |"
        for row in df.iter_rows()
    ]
    return "\n".join([header, rule, *rows])


class _ParquetUPathIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"expected a polars DataFrame, got {type(obj).__name__}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            obj.write_parquet(f)

    def get_metadata(self, context: dg.OutputContext, obj: pl.DataFrame) -> dict[str, Any]:
        documented = context.definition_metadata.get(COLUMN_SCHEMA)
        return frame_metadata(obj, documented if isinstance(documented, dg.TableSchema) else None)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame:
        with path.open("rb") as f:
            return pl.read_parquet(f)


class PolarsParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores polars DataFrames as Parquet files under `base_path` (a directory or fsspec URL).

    Partitioned assets get one file per partition; loading several partitions returns a dict.
    """

    base_path: str

    def create_io_manager(self, context: dg.InitResourceContext) -> _ParquetUPathIOManager:
        return _ParquetUPathIOManager(base_path=UPath(self.base_path))
