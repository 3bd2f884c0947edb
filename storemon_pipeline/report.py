"""The uptime/downtime report, computed set-based in DuckDB from the SQL files in sql/.

Each step takes an open DuckDB connection, so it runs and tests without Dagster. The steps
share one ``as_of`` through the one-row table ``report_as_of``, written by the first step.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from storemon_pipeline.warehouse import (
    ensure_schema,
    fetch_value,
    transaction,
    write_query_csv,
)

SQL_DIR = Path(__file__).with_name("sql")
REPORT_COLUMNS = [
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]
REPORTS_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS reports (
    report_id VARCHAR PRIMARY KEY,
    as_of TIMESTAMP NOT NULL,
    row_count BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    path VARCHAR NOT NULL
);
"""


class ReportError(Exception):
    pass


def _run_sql(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    conn.execute((SQL_DIR / f"{name}.sql").read_text())


def parse_as_of(text: str | None) -> datetime | None:
    """An explicit as_of: any ISO 8601 form or the dataset's '... UTC' form; naive means UTC."""
    if text is None or not str(text).strip():
        return None
    try:
        stamp = pd.Timestamp(str(text).strip().removesuffix(" UTC"))
    except ValueError as error:
        raise ReportError(f"as_of {text!r} is not a timestamp (e.g. 2023-01-25 18:00:00 UTC): {error}") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def build_localized_business_hours(conn: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> datetime:
    """Fix as_of (explicit, or the newest ingested poll) and build the UTC business hours."""
    ensure_schema(conn)
    with transaction(conn):
        resolved = as_of or fetch_value(conn, "SELECT max(timestamp_utc) FROM raw_store_polls")
        if resolved is None:
            raise ReportError("no polls have been ingested: there is nothing to report on")
        conn.execute("CREATE OR REPLACE TABLE report_as_of AS SELECT CAST(? AS TIMESTAMP) AS as_of", [resolved])
        _run_sql(conn, "time_zone_macros")
        _run_sql(conn, "localized_business_hours")
    return resolved


def current_as_of(conn: duckdb.DuckDBPyConnection) -> datetime:
    as_of = fetch_value(conn, "SELECT as_of FROM report_as_of")
    if as_of is None:
        raise ReportError("localized_business_hours has not been built yet")
    return as_of


def build_status_intervals(conn: duckdb.DuckDBPyConnection) -> None:
    with transaction(conn):
        _run_sql(conn, "status_intervals")


def build_store_report(conn: duckdb.DuckDBPyConnection) -> None:
    with transaction(conn):
        _run_sql(conn, "store_report")


def write_report_csv(conn: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Write the store_report table to ``path`` atomically; returns its row count."""
    write_query_csv(conn, f"SELECT {', '.join(REPORT_COLUMNS)} FROM store_report ORDER BY store_id", path)
    return fetch_value(conn, "SELECT count(*) FROM store_report")


def record_report(conn: duckdb.DuckDBPyConnection, report_id: str, as_of: datetime, row_count: int, path: Path) -> None:
    conn.execute(REPORTS_TABLE_SQL)
    conn.execute(
        "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, now()::TIMESTAMP, ?)", [report_id, as_of, row_count, str(path)]
    )


def compute_report(conn: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> pd.DataFrame:
    """All three steps at once, returning the report (for tests and tools)."""
    build_localized_business_hours(conn, as_of)
    build_status_intervals(conn)
    build_store_report(conn)
    return conn.execute(f"SELECT {', '.join(REPORT_COLUMNS)} FROM store_report ORDER BY store_id").df()
