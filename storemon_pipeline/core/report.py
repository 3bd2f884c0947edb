"""The uptime/downtime report, computed set-based in DuckDB from the SQL files in sql/.

A report is a pure function of one pinned snapshot of the warehouse (a load id and an
as_of). ``ReportComputation`` copies that snapshot into a private in-memory DuckDB and runs
the SQL there, so no other run can see its intermediate tables and it never sees another
run's. The same SQL runs whichever warehouse holds the sources.
"""

from __future__ import annotations

import io
import json
import math
import resource
import tempfile
from dataclasses import asdict, astuple, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter

import duckdb

from storemon_pipeline.core.db import configure, fetch_row, fetch_value, write_atomically
from storemon_pipeline.core.report_request import ReportError, parse_as_of, parse_snapshot  # noqa: F401 (the report's API)
from storemon_pipeline.core.settings import (  # noqa: F401 (report_file_path: the report's API)
    REPORT_FILE_NAMES,
    report_file_path,
    report_path,
    report_record_path,
)
from storemon_pipeline.core.warehouse import ALL_STORES, Snapshot, StoreRange, StoreSample, Warehouse

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
# The CSV's first line, as DuckDB writes it; the rows follow, shard after shard.
REPORT_HEADER = (",".join(REPORT_COLUMNS) + "\n").encode()
# The report's intermediate tables, exported as the latest materialization of their assets.
INTERMEDIATE_TABLES = ("localized_business_hours", "status_intervals")
PREVIEW_ROWS = 10
# reports/<id>.incidents.csv (sql/store_incidents.sql documents each column).
INCIDENT_COLUMNS = [
    "store_id",
    "start_utc",
    "end_utc",
    "first_inactive_utc",
    "last_inactive_utc",
    "preceding_active_utc",
    "following_active_utc",
    "min_minutes",
    "max_minutes",
    "inactive_polls",
    "start_local",
    "end_local",
    "business_minutes",
]
# reports/<id>.daily.csv (sql/store_daily_uptime.sql).
DAILY_COLUMNS = ["store_id", "local_date", "business_hours", "uptime", "downtime"]
WINDOWS = ("hour", "day", "week")
# reports/<id>.extended.csv (sql/store_report_extended.sql): the report's columns, then per
# window a 90 % interval for the true uptime, the polls and the unobserved business time.
EXTENDED_COLUMNS = [
    *REPORT_COLUMNS,
    *(f"uptime_last_{window}_{end}" for window in WINDOWS for end in ("lo", "hi")),
    *(f"polls_last_{window}" for window in WINDOWS),
    *(f"unobserved_last_{window}" for window in WINDOWS),
]


@dataclass(frozen=True)
class ReportFile:
    """A CSV written beside each report: ``reports/<id>.<name>.csv``, rows in store order."""

    name: str
    table: str
    columns: list[str]
    order: str  # after the store, within it

    @property
    def header(self) -> bytes:
        return (",".join(self.columns) + "\n").encode()

    @property
    def query(self) -> str:
        return (
            f"SELECT {', '.join(self.columns)} FROM {self.table} t JOIN report_stores s USING (store_key) "
            f"ORDER BY s.store_id, t.{self.order}"
        )


REPORT_FILES = {
    "incidents": ReportFile("incidents", "store_incidents", INCIDENT_COLUMNS, "first_inactive_utc"),
    "daily": ReportFile("daily", "store_daily_uptime", DAILY_COLUMNS, "local_date"),
    "extended": ReportFile("extended", "store_report_extended", EXTENDED_COLUMNS, "store_key"),
}
assert tuple(REPORT_FILES) == REPORT_FILE_NAMES
# The stores open in the week with least evidence (fewest polls, then most unobserved time).
LEAST_EVIDENCE_COLUMNS = [
    "store_id",
    "polls_last_week",
    "unobserved_last_week",
    "uptime_last_week",
    "uptime_last_week_lo",
    "uptime_last_week_hi",
]
LEAST_EVIDENCE_QUERY = f"""
    SELECT {", ".join(LEAST_EVIDENCE_COLUMNS)} FROM store_report_extended t JOIN report_stores s USING (store_key)
    WHERE t.uptime_last_week + t.downtime_last_week > 0
    ORDER BY polls_last_week, unobserved_last_week DESC, s.store_id LIMIT {PREVIEW_ROWS}
"""
# Stores open in the week, and those whose week interval is wider than a tenth of their business time.
INTERVAL_WIDTH_QUERY = """
    SELECT count(*) FILTER (WHERE uptime_last_week + downtime_last_week > 0),
           count(*) FILTER (WHERE uptime_last_week_hi - uptime_last_week_lo > 0.1 * (uptime_last_week + downtime_last_week))
    FROM store_report_extended
"""
PREVIEW_QUERY = f"SELECT {', '.join(REPORT_COLUMNS)} FROM store_report ORDER BY downtime_last_week DESC, store_id LIMIT {PREVIEW_ROWS}"
# The tables the SQL reads: the snapshot of the three sources (the polls under their stores'
# keys, beside the keys' ids), named as in the warehouse.
SOURCE_TABLES = ("raw_store_polls", "store_keys", "raw_business_hours", "raw_store_timezones")


def key_polls(conn: duckdb.DuckDBPyConnection, polls: str) -> None:
    """SOURCE_TABLES' raw_store_polls and store_keys from ``polls`` (a table or a query of
    store_id, timestamp_utc, status), for a report on polls that never were in a warehouse.
    The keys follow no order of the ids (the hash's), as a warehouse's follow arrival."""
    conn.execute(
        f"""
        CREATE TABLE store_keys AS
        SELECT CAST(row_number() OVER (ORDER BY hash(store_id), store_id) AS INTEGER) AS store_key, store_id
        FROM (SELECT DISTINCT store_id FROM {polls});
        CREATE TABLE raw_store_polls AS
        SELECT k.store_key, p.timestamp_utc, p.status FROM {polls} p JOIN store_keys k USING (store_id);
        """
    )


def run_sql(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    conn.execute((SQL_DIR / f"{name}.sql").read_text())


# The report's own tables (the exact-schema CSV needs no more), then the files beside it.
PLAIN_STEPS = ("localized_business_hours", "status_intervals", "store_report")
STEPS = (
    *PLAIN_STEPS,
    "store_incidents",
    "store_daily_uptime",
    "store_report_extended",
)


def prepare_report(conn: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """Fix the report's as_of, define the time-zone macros and key the stores (report_stores.sql)
    on a connection that holds the source tables (SOURCE_TABLES); the STEPS then run in order."""
    conn.execute("CREATE OR REPLACE TABLE report_as_of AS SELECT CAST(? AS TIMESTAMP) AS as_of", [as_of])
    run_sql(conn, "time_zone_macros")
    run_sql(conn, "report_stores")


def build_report_tables(conn: duckdb.DuckDBPyConnection, as_of: datetime, steps: tuple[str, ...] = STEPS) -> None:
    """Run the STEPS (or the first of them) on a connection that holds the source tables."""
    prepare_report(conn, as_of)
    for name in steps:
        build_step(conn, name)


def build_step(conn: duckdb.DuckDBPyConnection, step: str, model: IntervalModel | None = None) -> None:
    """One of the STEPS; the extended report's runs its SQL files in order, with ``model`` or
    fitting one on a sample of the stores at hand (build_intervals)."""
    if step == "store_report_extended":
        build_intervals(conn, model)
    else:
        run_sql(conn, step)


# The interval model is fitted on about this many stores (all, if there are no more): enough
# for its few dozen rates, and a fit that costs the same for 10 thousand stores or a million.
MODEL_SAMPLE_STORES = 5000
# Its parameters: tables of interval_rates.sql and interval_switch_balance.sql.
MODEL_TABLES = {
    "interval_curve_points": "side VARCHAR, status VARCHAR, bucket INTEGER, distance DOUBLE, q DOUBLE",
    "interval_hour_factor": "status VARCHAR, local_hour BIGINT, f DOUBLE",
    "interval_switch_balance": "up_share_shift DOUBLE",
}


@dataclass(frozen=True)
class IntervalModel:
    """The interval model's fitted parameters (each of MODEL_TABLES' rows): what a report's
    shards share, so that each computes the same intervals as the whole report would."""

    tables: dict[str, list[tuple]]


def model_sample(polled_stores: int) -> StoreSample:
    """The stores the interval model is fitted on: a hash sample of about MODEL_SAMPLE_STORES
    of the snapshot's ``polled_stores`` (all of them, if there are no more)."""
    if polled_stores <= MODEL_SAMPLE_STORES:
        return StoreSample("g")
    return StoreSample(f"{math.ceil(16**8 * MODEL_SAMPLE_STORES / polled_stores):08x}")


def fit_interval_model(conn: duckdb.DuckDBPyConnection, sample: StoreSample) -> IntervalModel:
    """Fit the model on ``sample``'s stores among those of a computation that has run the
    STEPS before store_report_extended."""
    conn.execute(
        f"CREATE OR REPLACE TABLE interval_model_stores AS SELECT store_key FROM report_stores WHERE {sample.condition()}"
    )
    run_sql(conn, "interval_evidence")
    run_sql(conn, "interval_rates")
    run_sql(conn, "interval_expectations")
    run_sql(conn, "interval_switch_balance")
    return IntervalModel({name: conn.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in MODEL_TABLES})


def build_intervals(conn: duckdb.DuckDBPyConnection, model: IntervalModel | None = None) -> None:
    """store_report_extended, with ``model``, or fitting one on model_sample of the stores here
    (all the report's stores must then be here: an unsharded report)."""
    if model is None:
        fit_interval_model(conn, model_sample(fetch_value(conn, "SELECT count(*) FROM report_stores")))
    else:
        conn.execute("CREATE OR REPLACE TABLE interval_model_stores (store_key INTEGER)")  # (none: it is given)
        run_sql(conn, "interval_evidence")
        for name, columns in MODEL_TABLES.items():
            conn.execute(f"CREATE OR REPLACE TABLE {name} ({columns})")
            if model.tables[name]:
                placeholders = ", ".join("?" * len(model.tables[name][0]))
                conn.executemany(f"INSERT INTO {name} VALUES ({placeholders})", model.tables[name])
        run_sql(conn, "interval_expectations")
    run_sql(conn, "store_report_extended")


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
        return cls(**json.loads(path.read_text()))


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
        SELECT abs((SELECT count(*) FROM store_report) - (SELECT count(DISTINCT store_key) FROM report_polls))
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
        run.build_all(); run.value("SELECT count(*) FROM store_report")

    compute_shard() runs one for a shard's stores (all, by default); AssembledReport writes
    the shards' rows as one CSV.
    """

    STEPS = STEPS  # (the module's, for callers that hold a run)

    def __init__(
        self,
        warehouse: Warehouse,
        load_id: int | None = None,
        as_of: datetime | None = None,
        stores: StoreRange | StoreSample = ALL_STORES,
        model: IntervalModel | None = None,
    ):
        self.warehouse, self.load_id, self.as_of, self.stores = warehouse, load_id, as_of, stores
        self.model = model
        self.conn: duckdb.DuckDBPyConnection | None = None
        self.snapshot: Snapshot | None = None

    def __enter__(self) -> ReportComputation:
        self.conn = configure(duckdb.connect())
        try:
            self.snapshot = self.warehouse.load_snapshot(
                self.conn,
                self.load_id,
                self.as_of,
                lambda snapshot: prepare_report(self.conn, snapshot.as_of),
                self.stores,
            )
        except BaseException:
            self.conn.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def build(self, step: str) -> None:
        build_step(self.conn, step, self.model)

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

    def file_bytes(self, query: str, options: str) -> bytes:
        """A query's result as the bytes of a file DuckDB writes (COPY ... TO)."""
        with tempfile.TemporaryDirectory(prefix="storemon-shard-") as scratch:
            path = Path(scratch) / "part"
            self.conn.execute(f"COPY ({query}) TO '{path}' ({options})")
            return path.read_bytes()


@dataclass
class ShardResult:
    """What one shard of a report hands to the step that writes the report (picklable: it
    travels through Dagster's I/O manager between processes or machines)."""

    stores: StoreRange
    snapshot: Snapshot
    report_rows: bytes  # its rows of the report CSV, in store_id order, without the header
    file_rows: dict[str, bytes]  # its rows of each of REPORT_FILES, likewise
    file_row_counts: dict[str, int]
    row_count: int
    stores_down_in_last_hour: int
    preview: list[tuple]  # its stores with most downtime last week
    least_evidence: list[tuple]  # its stores with least evidence (LEAST_EVIDENCE_COLUMNS)
    open_week_stores: int
    wide_week_intervals: int  # stores whose week interval is wider than 10 % of their business time
    coverage: Coverage
    violations: dict[str, int]
    load_seconds: float
    compute_seconds: float
    peak_rss_mb: float  # of the process that ran it (a step shares it with the others in process)
    tables: dict[str, bytes] = field(default_factory=dict)  # each of INTERMEDIATE_TABLES as Parquet

    def frame(self, name: str = "report"):
        """Its rows of the report, or of one of REPORT_FILES, as a DataFrame (ids as text; for
        tests and tools)."""
        import pandas as pd  # (the serving path never imports pandas)

        header, rows = (
            (REPORT_HEADER, self.report_rows) if name == "report" else (REPORT_FILES[name].header, self.file_rows[name])
        )
        return pd.read_csv(io.BytesIO(header + rows), dtype={"store_id": str})


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample_interval_model(warehouse: Warehouse, snapshot: Snapshot, polled_stores: int) -> IntervalModel:
    """The interval model of a report cut into shards: fitted once on model_sample of the
    snapshot's stores, from exactly their slice of it (the same fit as the whole report's)."""
    sample = model_sample(polled_stores)
    with ReportComputation(warehouse, snapshot.load_id, snapshot.as_of, sample) as run:
        for step in ("localized_business_hours", "status_intervals"):
            run.build(step)
        return fit_interval_model(run.conn, sample)


def compute_shard(
    warehouse: Warehouse,
    snapshot: Snapshot,
    stores: StoreRange = ALL_STORES,
    with_tables: bool = False,
    model: IntervalModel | None = None,
    files: tuple[str, ...] = REPORT_FILE_NAMES,
) -> ShardResult:
    """The report's rows for one shard's stores, from exactly their slice of the snapshot, and
    its rows of ``files`` (of REPORT_FILES: all, for a report run; `storemon report` asks for
    what it prints). A shard of several uses the report's interval model
    (sample_interval_model, fitted here if not given)."""
    started = perf_counter()
    extended = "extended" in files
    if model is None and stores.count > 1 and extended:
        model = sample_interval_model(warehouse, snapshot, stores.polled_stores)
    with ReportComputation(warehouse, snapshot.load_id, snapshot.as_of, stores, model) as run:
        loaded = perf_counter()
        for step in (*PLAIN_STEPS, *(REPORT_FILES[name].table for name in files)):
            run.build(step)
        open_week_stores, wide_week_intervals = fetch_row(run.conn, INTERVAL_WIDTH_QUERY) if extended else (0, 0)
        tables = {}
        if with_tables:
            for name in INTERMEDIATE_TABLES:
                query = f"SELECT s.store_id, t.* EXCLUDE (store_key) FROM {name} t JOIN report_stores s USING (store_key) ORDER BY ALL"
                tables[name] = run.file_bytes(query, "FORMAT parquet")
        result = ShardResult(
            stores=stores,
            snapshot=run.snapshot,
            report_rows=run.file_bytes(REPORT_QUERY, "FORMAT csv, HEADER false"),
            file_rows={name: run.file_bytes(REPORT_FILES[name].query, "FORMAT csv, HEADER false") for name in files},
            file_row_counts={name: run.value(f"SELECT count(*) FROM {REPORT_FILES[name].table}") for name in files},
            row_count=run.value("SELECT count(*) FROM store_report"),
            stores_down_in_last_hour=run.value("SELECT count(*) FROM store_report WHERE downtime_last_hour > 0"),
            preview=run.conn.execute(PREVIEW_QUERY).fetchall(),
            least_evidence=run.conn.execute(LEAST_EVIDENCE_QUERY).fetchall() if extended else [],
            open_week_stores=open_week_stores,
            wide_week_intervals=wide_week_intervals,
            coverage=run.coverage(),
            violations=run.check_report(),
            load_seconds=loaded - started,
            compute_seconds=perf_counter() - loaded,
            peak_rss_mb=_peak_rss_mb(),
            tables=tables,
        )
    return result


@dataclass
class AssembledReport:
    """The shards of one report, put together in store order."""

    shards: list[ShardResult]

    def __post_init__(self):
        self.shards = sorted(self.shards, key=lambda shard: shard.stores.index)
        indexes = [shard.stores.index for shard in self.shards]
        if not self.shards or indexes != list(range(self.shards[0].stores.count)):
            raise ReportError(f"the report's shards are incomplete: got {indexes}")

    @property
    def snapshot(self) -> Snapshot:
        return self.shards[0].snapshot

    @property
    def row_count(self) -> int:
        return sum(shard.row_count for shard in self.shards)

    @property
    def stores_down_in_last_hour(self) -> int:
        return sum(shard.stores_down_in_last_hour for shard in self.shards)

    @property
    def coverage(self) -> Coverage:
        return Coverage(*(sum(values) for values in zip(*(astuple(shard.coverage) for shard in self.shards))))

    @property
    def violations(self) -> dict[str, int]:
        return {name: sum(shard.violations[name] for shard in self.shards) for name in REPORT_CHECKS_SQL}

    def file_row_count(self, name: str) -> int:
        return sum(shard.file_row_counts[name] for shard in self.shards)

    @property
    def wide_week_interval_share(self) -> float:
        """Of the stores open in the week, the share whose week interval is wider than 10 % of
        their business time (0 when none is open)."""
        open_stores = sum(shard.open_week_stores for shard in self.shards)
        return sum(shard.wide_week_intervals for shard in self.shards) / open_stores if open_stores else 0.0

    @property
    def least_evidence(self) -> list[tuple]:
        rows = [row for shard in self.shards for row in shard.least_evidence]
        return sorted(rows, key=lambda row: (row[1], -row[2], row[0].encode()))[:PREVIEW_ROWS]

    @property
    def preview(self) -> list[tuple]:
        rows = [row for shard in self.shards for row in shard.preview]
        return sorted(rows, key=lambda row: (-row[6], row[0].encode()))[:PREVIEW_ROWS]

    def write(self, reports_dir: Path, report_id: str, warehouse_kind: str) -> ReportRecord:
        """``<id>.csv`` (the header, then each shard's rows in store order), each of
        REPORT_FILES the shards computed, and then ``<id>.json`` (its row of the history), each
        atomically: a history row always names complete files."""
        path = report_path(reports_dir, report_id)
        write_atomically(path, [REPORT_HEADER, *(shard.report_rows for shard in self.shards)])
        for name in self.shards[0].file_rows:
            rows = [shard.file_rows[name] for shard in self.shards]
            write_atomically(report_file_path(reports_dir, report_id, name), [REPORT_FILES[name].header, *rows])
        record = ReportRecord(
            report_id=report_id,
            as_of=str(self.snapshot.as_of),
            load_id=self.snapshot.load_id,
            row_count=self.row_count,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            warehouse=warehouse_kind,
        )
        write_json(report_record_path(reports_dir, report_id), asdict(record))
        return record

    def write_tables(self, asset_dir: Path) -> dict[str, tuple[Path, int]]:
        """Each intermediate table as one Parquet file (the shards' parts in order), atomically;
        its path and row count."""
        written = {}
        with tempfile.TemporaryDirectory(prefix="storemon-parts-") as scratch, configure(duckdb.connect()) as conn:
            for name in INTERMEDIATE_TABLES:
                parts = []
                for shard in self.shards:
                    part = Path(scratch) / f"{name}-{shard.stores.index}.parquet"
                    part.write_bytes(shard.tables[name])
                    parts.append(str(part))
                merged = Path(scratch) / f"{name}.parquet"
                conn.execute(f"COPY (SELECT * FROM read_parquet({parts!r})) TO '{merged}' (FORMAT parquet)")
                path = asset_dir / f"{name}.parquet"
                write_atomically(path, [merged.read_bytes()])
                written[name] = (path, fetch_value(conn, f"SELECT count(*) FROM read_parquet('{merged}')"))
        return written


def write_json(path: Path, data) -> None:
    write_atomically(path, [(json.dumps(data, indent=2) + "\n").encode()])


def compute_report(warehouse: Warehouse, load_id: int | None = None, as_of: datetime | None = None):
    """The report as a DataFrame (for tests and tools), with the snapshot it used."""
    with ReportComputation(warehouse, load_id, as_of) as run:
        run.build_all()
        return run.frame(REPORT_QUERY), run.snapshot
