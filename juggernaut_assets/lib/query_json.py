"""Database values as strict JSON, without losing exactness.

- `Decimal` (PostgreSQL `numeric`) becomes its exact decimal string (`"12.30"`), never a float.
- Non-finite floats become the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (PostgreSQL's own
  spellings), so the file is valid JSON (`allow_nan=False`) and they stay apart from NULL.
- Dates and times become ISO 8601 strings, UUIDs their text, bytes their hex; lists and dicts
  (arrays, JSON columns) are converted element by element.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_value(value: Any) -> Any:
    """`value` as something `json.dumps(..., allow_nan=False)` writes exactly."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


def encode_row(row: list[Any]) -> str:
    """One row as strict JSON text (ASCII, so its length is its size in bytes)."""
    return json.dumps([json_value(v) for v in row], allow_nan=False)
