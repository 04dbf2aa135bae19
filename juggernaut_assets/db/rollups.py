"""`experiment_metric_sums`: sufficient statistics of `experiment_metric_points`, kept exact by
database triggers, so `experiment_metrics` reads a few thousand rows instead of every point.

One row per experiment × variant × metric name × metric type (keyed by type so that no
`max()` ever has to be undone). Nullable keys are stored as `''` with a bit set in `null_keys`
(1 experiment_id, 2 variant, 4 metric_name, 8 metric_type), so NULL and `''` stay apart.

The sums are those of the plain aggregation in `assets/experiments.py`, over the rows whose
value, denominator and covariate are all finite or NULL; rows with a NaN or infinite field are
counted in `nonfinite_rows` instead (readers send such experiments to the careful path), which
keeps every sum finite and exactly reversible. The `*_n` counts say whether a sum would be NULL.

PostgreSQL: statement-level AFTER triggers with transition tables, one upsert per statement
(groups in key order, so two writers take the group rows' locks in the same order). SQLite:
row-level AFTER triggers. Sums of floats drift by rounding after many deletes and updates;
`rebuild_sums` (`juggernaut db rebuild-rollups`) recomputes them.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from juggernaut_assets.db.models import metadata

log = logging.getLogger(__name__)

POINTS = "experiment_metric_points"
SUMS = "experiment_metric_sums"
FUNCTION = "juggernaut_metric_sums_apply"
KEYS = ("experiment_id", "variant", "metric_name", "metric_type")
COUNTS = (
    "rows",
    "n",
    "den_n",
    "num_den_n",
    "cov_n",
    "num_cov_n",
    "negative_denominators",
    "nonfinite_rows",
)
SUMS_COLUMNS = (
    "sum",
    "sum_sq",
    "den_sum",
    "den_sum_sq",
    "num_den_sum",
    "cov_sum",
    "cov_sum_sq",
    "num_cov_sum",
)
TRIGGER_EVENTS = {
    "juggernaut_metric_sums_insert": "INSERT",
    "juggernaut_metric_sums_update": "UPDATE",
    "juggernaut_metric_sums_delete": "DELETE",
}
PG_TRIGGERS = {**TRIGGER_EVENTS, "juggernaut_metric_sums_truncate": "TRUNCATE"}
BACKFILL_WORK_MEM = "256MB"
LOCK_POINTS = f"LOCK TABLE {POINTS} IN SHARE ROW EXCLUSIVE MODE"

metric_sums = sa.Table(
    SUMS,
    metadata,
    *(sa.Column(key, sa.Text, primary_key=True) for key in KEYS),
    sa.Column("null_keys", sa.SmallInteger, primary_key=True),
    *(sa.Column(c, sa.BigInteger, nullable=False, server_default="0") for c in COUNTS),
    *(sa.Column(c, sa.Double, nullable=False, server_default="0") for c in SUMS_COLUMNS),
    comment="ours: sufficient statistics of experiment_metric_points, kept by triggers",
)

_VALUE_TYPE = {"postgresql": "double precision", "sqlite": "REAL"}
_INFINITY = {"postgresql": "'Infinity'::float8", "sqlite": "9e999"}


def _q(name: str) -> str:
    return f'"{name}"'


def _delta_select(source: str, dialect: str) -> str:
    """Per-group changes from `source` (point columns plus `sign`: +1 added, -1 removed).

    Grouped by the raw key columns (hash aggregation on the table's statistics), keys encoded
    afterwards on the few result rows, which are sorted so that writers lock groups in order.
    """
    inf = _INFINITY[dialect]
    keys = ", ".join(f"coalesce(CAST({k} AS TEXT), '') AS {k}" for k in KEYS)
    null_bits = " + ".join(
        f"CASE WHEN {k} IS NULL THEN {1 << i} ELSE 0 END" for i, k in enumerate(KEYS)
    )
    finite = " AND ".join(f"({x} IS NULL OR abs({x}) < {inf})" for x in ("v", "d", "c"))

    def count(condition: str) -> str:
        return f"sum(CASE WHEN {condition} THEN sign ELSE 0 END)"

    def total(expression: str) -> str:
        return f"coalesce(sum(CASE WHEN good = 1 THEN sign * {expression} END), 0)"

    deltas = {
        "rows": "sum(sign)",
        "n": count("v IS NOT NULL"),
        "den_n": count("d IS NOT NULL"),
        "num_den_n": count("v IS NOT NULL AND d IS NOT NULL"),
        "cov_n": count("c IS NOT NULL"),
        "num_cov_n": count("v IS NOT NULL AND c IS NOT NULL"),
        "negative_denominators": count("d < 0"),
        "nonfinite_rows": count("good = 0"),
        "sum": total("v"),
        "sum_sq": total("v * v"),
        "den_sum": total("d"),
        "den_sum_sq": total("d * d"),
        "num_den_sum": total("v * d"),
        "cov_sum": total("c"),
        "cov_sum_sq": total("c * c"),
        "num_cov_sum": total("v * c"),
    }
    raw_keys = ", ".join(KEYS)
    encoded = ", ".join((*KEYS, "null_keys"))
    return (
        f"SELECT {keys}, {null_bits} AS null_keys, {', '.join(_q(c) for c in deltas)} FROM ("
        f"SELECT {raw_keys}, {', '.join(f'{e} AS {_q(c)}' for c, e in deltas.items())} FROM ("
        f"SELECT r.*, CASE WHEN {finite} THEN 1 ELSE 0 END AS good FROM ("
        f"SELECT {raw_keys}, sign, CAST(metric_value AS {_VALUE_TYPE[dialect]}) AS v, "
        f"denominator AS d, covariate AS c FROM {source}) AS r) AS q GROUP BY {raw_keys}) AS g "
        f"WHERE true ORDER BY {encoded}"
    )


def _upsert(source: str, dialect: str) -> str:
    """Add the changes from `source` to the sums: one statement, one row per touched group."""
    values = (*COUNTS, *SUMS_COLUMNS)
    columns = ", ".join(_q(c) for c in (*KEYS, "null_keys", *values))
    updates = ", ".join(f"{_q(c)} = {SUMS}.{_q(c)} + excluded.{_q(c)}" for c in values)
    return (
        f"INSERT INTO {SUMS} ({columns}) {_delta_select(source, dialect)} "
        f"ON CONFLICT ({', '.join((*KEYS, 'null_keys'))}) DO UPDATE SET {updates}"
    )


def _rows(table: str, sign: int) -> str:
    fields = ", ".join((*KEYS, "metric_value", "denominator", "covariate"))
    return f"(SELECT {fields}, {sign} AS sign FROM {table})"


def _pg_function() -> str:
    fields = ", ".join((*KEYS, "metric_value", "denominator", "covariate"))
    # Only the rows an UPDATE really changed (in the columns that matter) touch the sums.
    changed = (
        f"((SELECT {fields}, 1 AS sign FROM (SELECT {fields} FROM new_rows EXCEPT ALL "
        f"SELECT {fields} FROM old_rows) AS added) UNION ALL (SELECT {fields}, -1 AS sign "
        f"FROM (SELECT {fields} FROM old_rows EXCEPT ALL SELECT {fields} FROM new_rows) "
        "AS removed)) AS p"
    )
    return f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql
    SET jit = off SET enable_sort = off AS $body$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_upsert(_rows("new_rows", 1) + " AS p", "postgresql")};
    ELSIF TG_OP = 'UPDATE' THEN
        {_upsert(changed, "postgresql")};
    ELSIF TG_OP = 'DELETE' THEN
        {_upsert(_rows("old_rows", -1) + " AS p", "postgresql")};
    ELSE
        DELETE FROM {SUMS};
    END IF;
    RETURN NULL;
END
$body$"""


def _pg_trigger(name: str, event: str) -> str:
    transition = {
        "INSERT": "REFERENCING NEW TABLE AS new_rows",
        "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "REFERENCING OLD TABLE AS old_rows",
        "TRUNCATE": "",
    }[event]
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {POINTS} {transition} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
    )


def _sqlite_row(prefix: str, sign: int) -> str:
    fields = ", ".join(
        f"{prefix}.{c} AS {c}" for c in (*KEYS, "metric_value", "denominator", "covariate")
    )
    return f"SELECT {fields}, {sign} AS sign"


def _sqlite_trigger(name: str, event: str) -> str:
    rows = {
        "INSERT": _sqlite_row("NEW", 1),
        "UPDATE": f"{_sqlite_row('OLD', -1)} UNION ALL {_sqlite_row('NEW', 1)}",
        "DELETE": _sqlite_row("OLD", -1),
    }[event]
    columns = ", ".join((*KEYS, "metric_value", "denominator", "covariate"))
    on = f"UPDATE OF {columns}" if event == "UPDATE" else event
    return (
        f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {on} ON {POINTS} FOR EACH ROW BEGIN "
        f"{_upsert(f'({rows}) AS p', 'sqlite')}; END"
    )


def _trigger_states(conn: Connection) -> dict[str, bool]:
    """Our triggers on the points table, by name: enabled or not."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            sa.text(
                "SELECT tgname, tgenabled <> 'D' FROM pg_trigger "
                "WHERE tgrelid = to_regclass(:points) AND tgname LIKE 'juggernaut_metric_sums%'"
            ),
            {"points": POINTS},
        )
    else:
        rows = conn.execute(
            sa.text(
                "SELECT name, 1 FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = :points AND name LIKE 'juggernaut_metric_sums%'"
            ),
            {"points": POINTS},
        )
    return {name: bool(enabled) for name, enabled in rows}


def _expected_triggers(conn: Connection) -> dict[str, str]:
    return PG_TRIGGERS if conn.dialect.name == "postgresql" else TRIGGER_EVENTS


def rollups_installed(conn: Connection) -> bool:
    """Whether every trigger is in place and enabled (one catalog query)."""
    states = _trigger_states(conn)
    return all(states.get(name) for name in _expected_triggers(conn))


def _lock_points(conn: Connection) -> None:
    """Hold off writers of the points (readers go on) until the transaction ends.

    SQLite: the engine's transactions start with BEGIN IMMEDIATE, which already does this.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(LOCK_POINTS)


def _backfill(conn: Connection) -> int:
    conn.exec_driver_sql(f"DELETE FROM {SUMS}")
    source = _rows(POINTS, 1) + " AS p"
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(_upsert(source, conn.dialect.name))
    else:
        # Group counts over several keys are overestimated (an all-NULL metric_type counts as
        # 200 values), so the planner would sort every point; with room for the estimated
        # groups it hashes them in one sequential scan (the real groups are a few thousand).
        before = conn.exec_driver_sql("SHOW work_mem").scalar()
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{BACKFILL_WORK_MEM}'")
        conn.exec_driver_sql(_upsert(source, conn.dialect.name))
        conn.execute(sa.text("SELECT set_config('work_mem', :v, true)"), {"v": before})
    return conn.execute(sa.select(sa.func.count()).select_from(metric_sums)).scalar_one()


def rebuild_sums(conn: Connection) -> int:
    """Recompute every sum from the points (drops accumulated rounding); returns the groups.

    Writers of the points wait while it runs (PostgreSQL: SHARE ROW EXCLUSIVE lock; SQLite:
    the write transaction). Run it in a READ COMMITTED transaction (the default).
    """
    _lock_points(conn)
    return _backfill(conn)


def install_rollups(conn: Connection) -> list[str]:
    """Install the triggers and fill the sums, once; later calls change nothing.

    Under the lock: the sums are filled from a full scan, then the triggers created, so no
    point is missed or counted twice. A trigger an operator disabled is left as it is (the
    asset then falls back to the full scan).
    """
    states = _trigger_states(conn)
    expected = _expected_triggers(conn)
    if all(states.get(name) for name in expected):
        return []
    if any(name in states and not states[name] for name in expected):
        log.warning(
            "experiment_metric_sums triggers are disabled: left alone; experiment_metrics "
            "scans every point"
        )
        return []
    _lock_points(conn)
    groups = _backfill(conn)
    changes = [f"filled {SUMS} ({groups} groups)"]
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_pg_function())
    for name, event in expected.items():
        if name in states:
            continue
        ddl = _pg_trigger(name, event) if conn.dialect.name == "postgresql" else None
        conn.exec_driver_sql(ddl or _sqlite_trigger(name, event))
        changes.append(f"created trigger {name}")
    return changes
