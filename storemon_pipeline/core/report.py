"""The uptime/downtime report, computed set-based in DuckDB from the SQL files in sql/.

A report is a pure function of one pinned snapshot of the warehouse (a load id and an
as_of). ``ReportComputation`` copies that snapshot into a private in-memory DuckDB and runs
the SQL there, so no other run can see its intermediate tables and it never sees another
run's. The same SQL runs whichever warehouse holds the sources.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from storemon_pipeline.core.db import configure, fetch_row, fetch_value, hidden_temp_name, write_query
from storemon_pipeline.core.report_request import ReportError, parse_as_of, parse_snapshot  # noqa: F401 (the report's API)
from storemon_pipeline.core.settings import report_path, report_record_path
from storemon_pipeline.core.warehouse import Snapshot, Warehouse

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
REPORT_QUERY = f"SELECT {', '.join(REPORT_COLUMNS)} FROM store_report ORDER BY store_id"
# The tables the SQL reads: the snapshot of the three sources, named as in the warehouse.
SOURCE_TABLES = ("raw_store_polls", "raw_business_hours", "raw_store_timezones")


def run_sql(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    conn.execute((SQL_DIR / f"{name}.sql").read_text())


STEPS = ("localized_business_hours", "status_intervals", "store_report")


def prepare_report(conn: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """Fix the report's as_of, define the time-zone macros and key the stores (report_stores.sql)
    on a connection that holds the source tables (SOURCE_TABLES); the STEPS then run in order."""
    conn.execute("CREATE OR REPLACE TABLE report_as_of AS SELECT CAST(? AS TIMESTAMP) AS as_of", [as_of])
    run_sql(conn, "time_zone_macros")
    run_sql(conn, "report_stores")


def build_report_tables(conn: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """Run the three SQL files on a connection that holds the source tables."""
    prepare_report(conn, as_of)
    for name in STEPS:
        run_sql(conn, name)


@dataclass
class ReportRecord:
    """A report's row of the reports history (``reports/<id>.json`` beside ``<id>.csv``)."""

    report_id: str
    as_of: str
    load_id: int
    row_count: int
    created_at: str
    warehouse: str

    @classmethod
    def read(cls, path: Path) -> ReportRecord:
        return cls(**json.loads(Path(path).read_text()))


# How well the sources' ids match (on the report's stores): mangled ids (scientific
# notation, spreadsheet rounding) show up as polled stores without hours or zone beside
# hours and zone ids that match no polled store.
COVERAGE_SQL = """
SELECT
    (SELECT count(*) FROM report_stores) AS polled_stores,
    (SELECT count(*) FROM report_stores WHERE NOT has_hours) AS polled_stores_without_hours,
    (SELECT count(*) FROM report_stores WHERE store_id NOT IN (SELECT store_id FROM raw_store_timezones)) AS polled_stores_without_zone,
    (SELECT count(DISTINCT store_id) FROM raw_business_hours) AS hours_ids,
    (SELECT count(DISTINCT store_id) FROM raw_business_hours
     WHERE store_id NOT IN (SELECT store_id FROM report_stores)) AS hours_ids_matching_no_polled_store,
    (SELECT count(*) FROM raw_store_timezones) AS zone_ids,
    (SELECT count(*) FROM raw_store_timezones
     WHERE store_id NOT IN (SELECT store_id FROM report_stores)) AS zone_ids_matching_no_polled_store
"""
# A source whose ids mostly match no polled store is probably a mangled copy.
MISMATCH_SHARE = 0.10


@dataclass(frozen=True)
class Coverage:
    polled_stores: int
    polled_stores_without_hours: int
    polled_stores_without_zone: int
    hours_ids: int
    hours_ids_matching_no_polled_store: int
    zone_ids: int
    zone_ids_matching_no_polled_store: int

    def summary(self) -> str:
        return (
            f"{self.polled_stores_without_hours:,} of {self.polled_stores:,} polled stores have no business-hours rows "
            f"(open 24x7), {self.polled_stores_without_zone:,} have no time zone (America/Chicago); "
            f"{self.hours_ids_matching_no_polled_store:,} hours ids and {self.zone_ids_matching_no_polled_store:,} "
            "zone ids match no polled store"
        )

    def warnings(self) -> list[str]:
        found = []
        for name, unmatched, total in (
            ("business-hours", self.hours_ids_matching_no_polled_store, self.hours_ids),
            ("time-zone", self.zone_ids_matching_no_polled_store, self.zone_ids),
        ):
            if total and unmatched >= MISMATCH_SHARE * total:
                found.append(
                    f"{unmatched:,} of {total:,} {name} store ids match no polled store: are the files from the "
                    "same copy of the dataset? (spreadsheets turn long ids into scientific notation or round them)"
                )
        return found


# The report's promises to its users, checked on each report (each query counts violations).
REPORT_CHECKS_SQL = {
    # Business time per window, independently from the merged business hours.
    "uptime_plus_downtime_is_business_time": """
        WITH params AS (SELECT as_of FROM report_as_of),
        business AS (
            SELECT store_key,
                   sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 1 HOUR, as_of)) / 60 AS hour,
                   sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 24 HOUR, as_of)) / 3600 AS day,
                   sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 168 HOUR, as_of)) / 3600 AS week
            FROM localized_business_hours, params GROUP BY store_key
        )
        SELECT count(*) FROM store_report r JOIN report_stores s USING (store_id) LEFT JOIN business b USING (store_key)
        WHERE abs(r.uptime_last_hour + r.downtime_last_hour - round(coalesce(b.hour, 0), 2)) > 0.011
           OR abs(r.uptime_last_day + r.downtime_last_day - round(coalesce(b.day, 0), 2)) > 0.011
           OR abs(r.uptime_last_week + r.downtime_last_week - round(coalesce(b.week, 0), 2)) > 0.011
    """,
    "one_row_per_polled_store": """
        SELECT abs((SELECT count(*) FROM store_report) - (SELECT count(DISTINCT store_id) FROM raw_store_polls, report_as_of
                                                          WHERE timestamp_utc <= report_as_of.as_of))
             + (SELECT count(*) - count(DISTINCT store_id) FROM store_report)
    """,
    "no_negative_values": """
        SELECT count(*) FROM store_report
        WHERE least(uptime_last_hour, uptime_last_day, uptime_last_week,
                    downtime_last_hour, downtime_last_day, downtime_last_week) < 0
    """,
    "values_within_their_window": """
        SELECT count(*) FROM store_report
        WHERE uptime_last_hour + downtime_last_hour > 60 OR uptime_last_day + downtime_last_day > 24
           OR uptime_last_week + downtime_last_week > 168
    """,
}


class ReportComputation:
    """One report run: a private in-memory DuckDB holding one snapshot and the derived tables.

    with ReportComputation(warehouse, load_id, as_of) as run:
        run.build("localized_business_hours"); ...; run.write_report(reports_dir, report_id)
    """

    STEPS = STEPS  # (the module's, for callers that hold a run)

    def __init__(self, warehouse: Warehouse, load_id: int | None = None, as_of: datetime | None = None):
        self.warehouse, self.load_id, self.as_of = warehouse, load_id, as_of
        self.conn: duckdb.DuckDBPyConnection | None = None
        self.snapshot: Snapshot | None = None

    def __enter__(self) -> ReportComputation:
        self.conn = configure(duckdb.connect())
        try:
            self.snapshot = self.warehouse.load_snapshot(self.conn, self.load_id, self.as_of)
            prepare_report(self.conn, self.snapshot.as_of)
        except BaseException:
            self.conn.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def build(self, step: str) -> None:
        run_sql(self.conn, step)

    def build_all(self) -> None:
        for step in self.STEPS:
            self.build(step)

    def coverage(self) -> Coverage:
        return Coverage(*fetch_row(self.conn, COVERAGE_SQL))

    def check_report(self) -> dict[str, int]:
        """Violations of each of REPORT_CHECKS_SQL (0: the promise holds)."""
        return {name: int(fetch_value(self.conn, sql)) for name, sql in REPORT_CHECKS_SQL.items()}

    def value(self, sql: str, params=None):
        return fetch_value(self.conn, sql, params)

    def frame(self, sql: str):
        return self.conn.execute(sql).df()

    def export(self, table: str, path: Path) -> None:
        """A keyed table as a Parquet file with the stores' ids, atomically (an intermediate
        asset's latest materialization)."""
        query = f"SELECT s.store_id, t.* EXCLUDE (store_key) FROM {table} t JOIN report_stores s USING (store_key) ORDER BY ALL"
        write_query(self.conn, query, path, file_format="parquet")

    def write_report(self, reports_dir: Path, report_id: str) -> ReportRecord:
        """``<id>.csv`` then ``<id>.json`` (its row of the history), each atomically; the JSON
        is written last, so a history row always names a complete CSV."""
        write_query(self.conn, REPORT_QUERY, report_path(reports_dir, report_id))
        record = ReportRecord(
            report_id=report_id,
            as_of=str(self.snapshot.as_of),
            load_id=self.snapshot.load_id,
            row_count=self.value("SELECT count(*) FROM store_report"),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            warehouse=self.warehouse.kind,
        )
        write_json(report_record_path(reports_dir, report_id), asdict(record))
        return record


def write_json(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_temp_name(path)
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def compute_report(warehouse: Warehouse, load_id: int | None = None, as_of: datetime | None = None):
    """The report as a DataFrame (for tests and tools), with the snapshot it used."""
    with ReportComputation(warehouse, load_id, as_of) as run:
        run.build_all()
        return run.frame(REPORT_QUERY), run.snapshot
