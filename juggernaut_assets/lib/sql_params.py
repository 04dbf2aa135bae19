"""`:name` parameters in task SQL, found with sqlglot's tokenizer rather than a regular expression.

A colon is a parameter only where the tokenizer sees a `:` token directly followed by a name:
never inside a string literal (`'a:b'`), a quoted identifier (`"a:b"`), a comment, or a `::`
cast. Inside square brackets (PostgreSQL array slices, `a[lo:hi]`) a `:name` is a parameter only
when `params` has that name. The SQL is then rendered in the driver's own parameter style, so no
second parser (SQLAlchemy's `text()`) ever looks at it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from juggernaut_assets.lib.sql_guard import SQLGLOT_DIALECTS

_NAME = re.compile(r"[A-Za-z_]\w*")


class SqlParamError(ValueError):
    """A parameter the SQL uses has no value (or the SQL cannot be tokenised)."""


@dataclass(frozen=True)
class BindParameter:
    name: str
    start: int
    """Offset of the `:`."""
    end: int
    """Offset just past the name."""


def find_bind_parameters(sql: str, dialect: str, params: dict[str, Any]) -> list[BindParameter]:
    """The `:name` parameters of `sql` (SQLAlchemy dialect name), in order of appearance."""
    tokens = Dialect.get_or_raise(SQLGLOT_DIALECTS.get(dialect)).tokenizer().tokenize(sql)
    found: list[BindParameter] = []
    depth = 0
    for colon, name in itertools.pairwise(tokens):
        if colon.token_type == TokenType.L_BRACKET:
            depth += 1
        elif colon.token_type == TokenType.R_BRACKET:
            depth = max(depth - 1, 0)
        if colon.token_type != TokenType.COLON or name.start != colon.end + 1:
            continue
        text = sql[name.start : name.end + 1]
        if not _NAME.fullmatch(text) or (depth and text not in params):
            continue
        found.append(BindParameter(text, colon.start, name.end + 1))
    return found


def render_for_driver(sql: str, dialect: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`sql` in the driver's parameter style, and the values it binds.

    psycopg2 (`pyformat`): `:name` → `%(name)s`, every other `%` doubled. SQLite's own parser
    reads `:name` and knows its literals, so the text stays as it is.
    """
    params_found = find_bind_parameters(sql, dialect, params)
    missing = sorted({p.name for p in params_found} - params.keys())
    if missing:
        names = ", ".join(f":{n}" for n in missing)
        raise SqlParamError(f"no value in params for {names}")
    values = {p.name: params[p.name] for p in params_found}
    if dialect != "postgresql":
        return sql, values
    parts: list[str] = []
    cursor = 0
    for parameter in params_found:
        parts.append(sql[cursor : parameter.start].replace("%", "%%"))
        parts.append(f"%({parameter.name})s")
        cursor = parameter.end
    parts.append(sql[cursor:].replace("%", "%%"))
    return "".join(parts), values
