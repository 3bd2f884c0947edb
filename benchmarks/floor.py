"""The floor: the least work that gives `storemon report`'s answer, timed by phase.

    python -m benchmarks.floor --source DIR --out FILE

DuckDB's own ``read_csv`` on the three files of a clean dataset (the benchmark's generated
ones: 2023 format, no bad rows), the project's SQL files unchanged, and ``COPY`` to CSV. No
validation, no warehouse, no snapshot, no Dagster: whatever storemon spends beyond this is
its own overhead, so the benchmark prints its figures as ratios to this one. The output must
be byte-identical to `storemon report`'s (the benchmark checks it).

It imports nothing of storemon's but the SQL files' folder, so it stays a fixed yardstick.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parent.parent / "storemon_pipeline" / "core" / "sql"
REPORT_SQL = ("time_zone_macros", "report_stores", "localized_business_hours", "status_intervals", "store_report")
COLUMNS = "store_id, uptime_last_hour, uptime_last_day, uptime_last_week, downtime_last_hour, downtime_last_day, downtime_last_week"


def read_keyed_polls(conn: duckdb.DuckDBPyConnection, source: Path) -> None:
    """``source``'s poll file as store_keys and raw_store_polls (store_key, timestamp_utc, status)."""
    conn.execute(
        f"""
        CREATE TABLE polls_read AS
        SELECT store_id, CAST(replace(timestamp_utc, ' UTC', '') AS TIMESTAMP) AS timestamp_utc, status
        FROM read_csv('{source}/store_status.csv.gz', header = true, all_varchar = true);
        -- The SQL reads polls under integer store keys, as a warehouse gives them.
        CREATE TABLE store_keys AS
        SELECT CAST(row_number() OVER () AS INTEGER) AS store_key, store_id FROM (SELECT DISTINCT store_id FROM polls_read);
        CREATE TABLE raw_store_polls AS
        SELECT k.store_key, p.timestamp_utc, p.status FROM polls_read p JOIN store_keys k USING (store_id);
        DROP TABLE polls_read;
        """
    )


def floor_report(source: Path, out: Path) -> dict:
    phases = {}
    started = time.perf_counter()
    conn = duckdb.connect()
    conn.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'")
    read_keyed_polls(conn, source)
    phases["read_polls_seconds"] = time.perf_counter() - started
    mark = time.perf_counter()
    conn.execute(
        f"""
        CREATE TABLE raw_business_hours AS
        SELECT store_id, CAST("day" AS TINYINT) AS day_of_week, CAST(start_time_local AS TIME) AS start_time_local,
               CAST(end_time_local AS TIME) AS end_time_local
        FROM read_csv('{source}/business_hours.csv.gz', header = true, all_varchar = true);
        CREATE TABLE raw_store_timezones AS
        SELECT store_id, timezone_str FROM read_csv('{source}/timezones.csv.gz', header = true, all_varchar = true);
        CREATE TABLE report_as_of AS SELECT max(timestamp_utc) AS as_of FROM raw_store_polls;
        """
    )
    phases["read_hours_and_zones_seconds"] = time.perf_counter() - mark
    mark = time.perf_counter()
    for name in REPORT_SQL:
        conn.execute((SQL_DIR / f"{name}.sql").read_text())
    phases["report_sql_seconds"] = time.perf_counter() - mark
    mark = time.perf_counter()
    conn.execute(f"COPY (SELECT {COLUMNS} FROM store_report ORDER BY store_id) TO '{out}' (FORMAT csv, HEADER)")
    phases["csv_seconds"] = time.perf_counter() - mark
    conn.close()
    return {"seconds": time.perf_counter() - started, **phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figures = floor_report(args.source.resolve(), args.out)
    from benchmarks.steps import vm_hwm_mb

    figures["peak_rss_mb"] = vm_hwm_mb()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
