"""Is this SQL one statement that only reads? A sqlglot check with a message for a person.

The check is the first of two layers (the database's own rights are the second, see
`db/engine.py`): it refuses anything but a single SELECT (or set operation of SELECTs), and
inside it every write, `SELECT … INTO` (which creates a table), row locks (`FOR UPDATE`,
`FOR SHARE`), commands sqlglot cannot model, and every function call outside the pure
functions of `sql_functions` — including calls in FROM (`FROM pg_sleep(1)`), schema-qualified
calls (only `pg_catalog.` is accepted, the schema PostgreSQL searches first anyway) and quoted
function names that differ from their lower-case spelling (`"LOWER"(x)` is a different,
possibly user-defined, function in PostgreSQL).
"""

from __future__ import annotations

import itertools

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from juggernaut_assets.lib.sql_functions import (
    NAME_CARRYING_AGGREGATES,
    PURE_FUNCTION_CLASSES,
    PURE_FUNCTION_NAMES,
)

SQLGLOT_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite"}
"""SQLAlchemy dialect name → sqlglot dialect name."""

TRUSTED_FUNCTION_SCHEMA = "pg_catalog"

_WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Command,
    exp.Copy,
)
_READS = (exp.Select, exp.SetOperation)
_NAMED_CALLS = (exp.Anonymous, *NAME_CARRYING_AGGREGATES)


def _typed_names() -> frozenset[str]:
    """Names of the allowed typed functions, for when sqlglot leaves one anonymous
    (`pg_catalog.lower(x)` is parsed as an anonymous `lower`)."""
    classes = [*PURE_FUNCTION_CLASSES, *exp.AggFunc.__subclasses__()]
    return frozenset(n.lower() for c in classes if c not in _NAMED_CALLS for n in c.sql_names())


_ALLOWED_NAMES = PURE_FUNCTION_NAMES | _typed_names()


class UnsafeSql(ValueError):
    """The SQL is not one read-only statement; the message says why, for a person."""


def check_read_only_sql(sql: str, dialect: str) -> exp.Expression:
    """The parsed statement, or `UnsafeSql` unless `sql` is exactly one statement that only reads.

    `dialect` is SQLAlchemy's name (`postgresql`, `sqlite`).
    """
    read = SQLGLOT_DIALECTS.get(dialect)
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s]
    except sqlglot.errors.ParseError as exc:
        raise UnsafeSql(_parse_error_message(exc)) from None
    except sqlglot.errors.TokenError as exc:
        raise UnsafeSql(f"SQL does not parse: {exc}") from None
    if len(statements) != 1:
        raise UnsafeSql(f"exactly one SQL statement is allowed, got {len(statements)}")
    statement = statements[0]
    write = next(iter(statement.find_all(*_WRITES)), None)
    if write is not None or not isinstance(statement, _READS):
        kind = (write or statement).key.upper()
        raise UnsafeSql(f"read-only task: {kind} statements are not allowed, only SELECT")
    if statement.find(exp.Into):
        raise UnsafeSql("read-only task: SELECT … INTO creates a table and is not allowed")
    if statement.find(exp.Lock):
        raise UnsafeSql("read-only task: row locks (FOR UPDATE / FOR SHARE) are not allowed")
    for function in statement.find_all(exp.Func):
        _check_function(function)
    _check_quoted_function_names(sql, read)
    return statement


def _check_function(node: exp.Func) -> None:
    name = function_name(node)
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        schema = parent.this
        if not (isinstance(schema, exp.Identifier | exp.Var | exp.Column)) or (
            schema.name != TRUSTED_FUNCTION_SCHEMA
        ):
            raise UnsafeSql(
                f"read-only task: schema-qualified function {parent.sql()} is not allowed "
                f"(only {TRUSTED_FUNCTION_SCHEMA}.<function>)"
            )
    if isinstance(node, _NAMED_CALLS):
        allowed = name in _ALLOWED_NAMES
    else:
        allowed = isinstance(node, (*PURE_FUNCTION_CLASSES, exp.AggFunc))
    if not allowed:
        raise UnsafeSql(
            f"read-only task: function {name}() is not allowed "
            "(only pure functions: aggregates, math, string, date/time, JSON, casts, windows)"
        )


def function_name(node: exp.Func) -> str:
    """The lower-case name of a call: as written for unknown functions, else sqlglot's name."""
    if isinstance(node, _NAMED_CALLS):
        return node.name.lower()
    return node.sql_name().lower()


def _check_quoted_function_names(sql: str, read: str | None) -> None:
    """`"LOWER"(x)` parses as `LOWER(x)` but calls a function named `LOWER` (case-sensitive)."""
    tokens = Dialect.get_or_raise(read).tokenizer().tokenize(sql)
    for token, following in itertools.pairwise(tokens):
        if (
            token.token_type == TokenType.IDENTIFIER
            and following.token_type == TokenType.L_PAREN
            and token.text != token.text.lower()
        ):
            raise UnsafeSql(
                f'read-only task: quoted function name "{token.text}" is not allowed '
                "(write function names unquoted)"
            )


def _parse_error_message(exc: sqlglot.errors.ParseError) -> str:
    if not exc.errors:
        return f"SQL does not parse: {exc}"
    first = exc.errors[0]
    near = f"{first.get('start_context', '')}{first.get('highlight', '')}".strip()
    return (
        f"SQL does not parse: unexpected '{first.get('highlight', '')}' at line "
        f"{first.get('line')}, column {first.get('col')} (after '{near}')"
    )
