"""Where the sources live: the embedded DuckDB file, or a shared PostgreSQL database.

Both warehouses hold the same tables with the same meaning and run the same SQL for the two
things that matter, so a load and a snapshot mean the same in either:

- committing a load (``LOAD_SQL``): one transaction, one new load id, a dense integer key
  for each store id not seen before (``store_keys``), polls appended idempotently under
  their store's key, hours and zones versioned (the load that added and the load that retired
  each row), rejected rows, and how far the poll file was read;
- reading a snapshot (``SNAPSHOT_SQL``): exactly the rows that a given load id had seen,
  in a private in-memory DuckDB where the report is computed. Hours and zones are copied;
  the polls are visible only while the caller's ``prepare`` keys them into its own tables
  (report_stores.sql), then dropped, so the report never holds a second copy of them.

Embedded mode: readers attach the file read-only (several processes may at once); a writer
attaches it read-write, which DuckDB grants only while no other process has it open. Both
retry for ``lock_timeout`` seconds, logging once that they wait. A report holds the file only
while it copies its snapshot and keys its polls (read in place, through a view).

Postgres mode: loads are serialized by a table lock on ``loads`` (so load ids commit in
order and a snapshot of load N never gains rows later); a snapshot is read in one
REPEATABLE READ transaction. Tables live in the schema ``storemon``, beside Dagster's own.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from storemon_pipeline.core.db import configure, fetch_row, fetch_value
from storemon_pipeline.core.health import duckdb_file_problem, is_no_space, no_space_error
from storemon_pipeline.core.ingest import HOURS, POLLS, ZONES, SourceProgress, StagedLoad
from storemon_pipeline.core.settings import Settings, redact

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
SCHEMA_VERSION = 3  # 3: polls keyed by store_key (store_keys), not by the store id


class WarehouseError(Exception):
    """The warehouse cannot be used (unreachable, damaged, busy for too long, too old)."""


class NothingIngested(WarehouseError):
    """No load has been committed (or the requested one does not exist)."""


@dataclass(frozen=True)
class Snapshot:
    """What a report sees: every load up to ``load_id`` (the ingestion watermark), up to ``as_of``."""

    load_id: int
    as_of: datetime


@dataclass(frozen=True)
class StoreRange:
    """One shard of a report: the stores with ``first <= store_id < end`` in byte order
    (None: unbounded). The report's rows are in store_id order, so a shard's rows are a
    contiguous run of them."""

    index: int
    count: int
    first: str | None = None
    end: str | None = None
    polled_stores: int | None = None  # the snapshot's, all shards together (None: not counted)

    def condition(self) -> str:
        """SQL that keeps the range's rows (of a table with a store_id column)."""
        bounds = [f"store_id >= {sql_literal(self.first)}"] if self.first is not None else []
        bounds += [f"store_id < {sql_literal(self.end)}"] if self.end is not None else []
        return " AND ".join(bounds) or "TRUE"


ALL_STORES = StoreRange(index=0, count=1)


@dataclass(frozen=True)
class StoreSample:
    """The stores whose md5(store_id), in hex, sorts below ``threshold``: a sample of the
    stores that both dialects select alike and that does not depend on how they are sharded
    ("g" sorts after every hex digit: all stores)."""

    threshold: str

    def condition(self) -> str:
        return f"md5(store_id) < {sql_literal(self.threshold)}"


def key_condition(condition: str) -> str:
    """A condition on store ids as one on the polls' store keys ({wh}: the warehouse's schema)."""
    return (
        "TRUE" if condition == "TRUE" else f"store_key IN (SELECT store_key FROM {{wh}}.store_keys WHERE {condition})"
    )


# The first store id of each of {shards} shards of equal store counts (ntile over the
# snapshot's polled stores in store_id order); both dialects sort text in byte order here.
SHARD_STARTS_SQL = """
    SELECT min(store_id) AS first, count(*) AS stores FROM (
        SELECT store_id, ntile({shards}) OVER (ORDER BY store_id) AS shard
        FROM {wh}.store_keys WHERE store_key IN (
            SELECT store_key FROM {wh}.raw_store_polls WHERE load_id <= {load} AND timestamp_utc <= {as_of})
    ) AS numbered
    GROUP BY shard ORDER BY shard
"""


def store_ranges(starts: list[str], count: int, polled_stores: int | None = None) -> list[StoreRange]:
    """Shards from their first store ids; the first is open below and the last above, so every
    id (also of hours and zones that match no polled store) falls in exactly one."""
    starts = starts[: max(count, 1)] or [None]
    ends = [*starts[1:], None]
    return [
        StoreRange(index=i, count=len(starts), first=first if i else None, end=end, polled_stores=polled_stores)
        for i, (first, end) in enumerate(zip(starts, ends))
    ]


PROGRESS_SQL = (
    "SELECT path, byte_offset, next_line, fingerprint FROM {wh}.source_progress WHERE source = 'store_status'"
)


def read_progress_with(run_query) -> SourceProgress | None:
    rows = run_query(PROGRESS_SQL)
    return SourceProgress(*rows[0]) if rows else None


def staged_bounds(staged: StagedLoad) -> tuple | None:
    """The time range of the load's polls (None: no polls to add)."""
    if not staged.loaded(POLLS):
        return None
    bounds = fetch_row(staged.conn, "SELECT min(timestamp_utc), max(timestamp_utc) FROM merged_polls")
    return bounds if bounds and bounds[0] is not None else None


def sql_literal(value) -> str:
    """A value as an SQL literal, for the statements both warehouses share (their parameter
    styles differ). Only program-made values reach it: ints, timestamps, run ids, and store
    ids that validation accepted (no control characters), quoted by doubling the quote."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return "'" + str(value).replace("'", "''") + "'"


# -- the shared SQL ----------------------------------------------------------------------

# {wh} is the warehouse's schema (the attached file, or the Postgres schema); staging tables
# (merged_polls, merged_store_ids, staged_hours, staged_zones, staged_rejections) are the load's own.
#
# Each store id gets a dense integer key the first time a load brings a poll of it, numbered
# on from the largest (loads commit one at a time). Polls are stored under the key: a third of
# the bytes of a 36-character id, and the report joins, sorts and windows on it.
STORE_KEYS_LOAD_SQL = (
    "store_keys_added",
    """
    INSERT INTO {wh}.store_keys (store_key, store_id)
    SELECT (SELECT coalesce(max(store_key), 0) FROM {wh}.store_keys) + CAST(row_number() OVER (ORDER BY n.store_id) AS INTEGER),
           n.store_id
    FROM merged_store_ids n
    WHERE NOT EXISTS (SELECT 1 FROM {wh}.store_keys k WHERE k.store_id = n.store_id)
    """,
)
# The load's polls under their stores' keys.
_KEYED_POLLS = """(
    SELECT k.store_key, m.timestamp_utc, m.status FROM merged_polls m JOIN {wh}.store_keys k ON k.store_id = m.store_id
)"""
POLLS_LOAD_SQL = [
    (
        # Inactive wins: a later load that says inactive for a stored active poll marks it
        # from that load on, so earlier snapshots still see it active. (Before the insert: it
        # concerns stored polls only, and then never joins the load's own new rows.)
        "polls_inactivated",
        """
        UPDATE {wh}.raw_store_polls AS p SET inactive_from_load = {load}
        FROM {keyed} AS m
        WHERE p.timestamp_utc BETWEEN {lo} AND {hi}
          AND p.store_key = m.store_key AND p.timestamp_utc = m.timestamp_utc
          AND m.status = 'inactive' AND p.status = 'active' AND p.inactive_from_load IS NULL
        """,
    ),
    (
        "polls_added",
        """
        INSERT INTO {wh}.raw_store_polls (store_key, timestamp_utc, status, load_id, inactive_from_load)
        SELECT m.store_key, m.timestamp_utc, m.status, {load}, NULL
        FROM {keyed} AS m
        WHERE NOT EXISTS (
            SELECT 1 FROM {wh}.raw_store_polls p
            WHERE p.timestamp_utc BETWEEN {lo} AND {hi}
              AND p.store_key = m.store_key AND p.timestamp_utc = m.timestamp_utc)
        {order_by}
        """,
    ),
]
_HOURS_KEY = ["store_id", "day_of_week", "start_time_local", "end_time_local"]
_ZONES_KEY = ["store_id", "timezone_str"]


def _versioned_load_sql(table: str, staged: str, key: list[str]) -> list[tuple[str, str]]:
    same = " AND ".join(f"s.{c} = t.{c}" for c in key)
    columns = ", ".join(key)
    return [
        (
            f"{table}_retired",
            f"""
            UPDATE {{wh}}.{table} AS t SET retired_load = {{load}}
            WHERE t.retired_load IS NULL AND NOT EXISTS (SELECT 1 FROM {staged} s WHERE {same})
            """,
        ),
        (
            f"{table}_added",
            f"""
            INSERT INTO {{wh}}.{table} ({columns}, added_load, retired_load)
            SELECT {", ".join(f"s.{c}" for c in key)}, {{load}}, NULL FROM {staged} s
            WHERE NOT EXISTS (SELECT 1 FROM {{wh}}.{table} t WHERE t.retired_load IS NULL AND {same})
            """,
        ),
    ]


# Retention: polls older than the window that any report of the newest data can use. (A
# snapshot older than that can then no longer be recomputed exactly.)
RETENTION_SQL = """
DELETE FROM {wh}.raw_store_polls
WHERE timestamp_utc < (SELECT max(timestamp_utc) FROM {wh}.raw_store_polls) - INTERVAL '{days} days'
"""

HOURS_LOAD_SQL = _versioned_load_sql("raw_business_hours", "staged_hours", _HOURS_KEY)
ZONES_LOAD_SQL = _versioned_load_sql("raw_store_timezones", "staged_zones", _ZONES_KEY)
REJECTIONS_LOAD_SQL = """
INSERT INTO {wh}.rejected_rows (source, source_file, line_number, reason, raw_values, run_id, load_id, rejected_at)
SELECT source, source_file, line_number, reason, raw_values, {run_id}, {load}, {now} FROM staged_rejections
"""

SNAPSHOT_SQL = {
    "raw_store_polls": """
        SELECT store_key, timestamp_utc,
               CASE WHEN inactive_from_load <= {load} THEN 'inactive' ELSE status END AS status
        FROM {wh}.raw_store_polls WHERE load_id <= {load} AND timestamp_utc <= {as_of} AND {store_keys}
    """,
    "store_keys": "SELECT store_key, store_id FROM {wh}.store_keys WHERE {stores}",
    "raw_business_hours": """
        SELECT store_id, day_of_week, start_time_local, end_time_local FROM {wh}.raw_business_hours
        WHERE added_load <= {load} AND (retired_load IS NULL OR retired_load > {load}) AND {stores}
    """,
    "raw_store_timezones": """
        SELECT store_id, timezone_str FROM {wh}.raw_store_timezones
        WHERE added_load <= {load} AND (retired_load IS NULL OR retired_load > {load}) AND {stores}
    """,
}
SNAPSHOT_COLUMNS = {
    "raw_store_polls": {"store_key": "INTEGER", "timestamp_utc": "TIMESTAMP", "status": "VARCHAR"},
    "store_keys": {"store_key": "INTEGER", "store_id": "VARCHAR"},
    "raw_business_hours": {
        "store_id": "VARCHAR",
        "day_of_week": "TINYINT",
        "start_time_local": "TIME",
        "end_time_local": "TIME",
    },
    "raw_store_timezones": {"store_id": "VARCHAR", "timezone_str": "VARCHAR"},
}

# The tables, in each dialect. (Polls carry the load that added them, and the load from which
# a later "inactive" for the same key overrides them.)
_TABLES = """
CREATE TABLE IF NOT EXISTS {wh}.schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {wh}.loads (
    load_id BIGINT PRIMARY KEY, run_id {text}, committed_at TIMESTAMP NOT NULL,
    polls_added BIGINT NOT NULL, polls_inactivated BIGINT NOT NULL,
    hours_changed BIGINT NOT NULL, zones_changed BIGINT NOT NULL, rows_rejected BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS {wh}.store_keys (store_key INTEGER NOT NULL, store_id {text} NOT NULL {store_keys_key});
{polls_table}
CREATE TABLE IF NOT EXISTS {wh}.raw_business_hours (
    store_id {text} NOT NULL, day_of_week SMALLINT NOT NULL,
    start_time_local TIME NOT NULL, end_time_local TIME NOT NULL,
    added_load BIGINT NOT NULL, retired_load BIGINT
);
CREATE TABLE IF NOT EXISTS {wh}.raw_store_timezones (
    store_id {text} NOT NULL, timezone_str {text} NOT NULL, added_load BIGINT NOT NULL, retired_load BIGINT
);
CREATE TABLE IF NOT EXISTS {wh}.rejected_rows (
    source {text} NOT NULL, source_file {text} NOT NULL, line_number BIGINT, reason {text} NOT NULL,
    raw_values {text}, run_id {text}, load_id BIGINT, rejected_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {wh}.source_progress (
    source {text} PRIMARY KEY, path {text} NOT NULL, byte_offset BIGINT NOT NULL,
    next_line BIGINT NOT NULL, fingerprint {text} NOT NULL, updated_at TIMESTAMP NOT NULL
);
"""


_POLLS_TABLE = """CREATE TABLE IF NOT EXISTS {wh}.{name} (
    store_key INTEGER NOT NULL, timestamp_utc TIMESTAMP NOT NULL, status {text} NOT NULL,
    load_id BIGINT NOT NULL, inactive_from_load BIGINT {polls_key}
);"""


def _tables_sql(wh: str, text: str, polls_key: str = "", store_keys_key: str = "") -> str:
    names = {"wh": wh, "text": text, "polls_key": polls_key}
    return _TABLES.format(
        **names, store_keys_key=store_keys_key, polls_table=_POLLS_TABLE.format(**names, name="raw_store_polls")
    )


# A warehouse written before store keys (schema 2: polls keyed by the store id) is moved to
# them in the writer's first transaction: keys numbered in id order, polls copied under them.
def _store_keys_upgrade_sql(wh: str, text: str, polls_key: str = "") -> list[str]:
    return [
        f"""INSERT INTO {wh}.store_keys (store_key, store_id)
            SELECT CAST(row_number() OVER (ORDER BY store_id) AS INTEGER), store_id
            FROM (SELECT DISTINCT store_id FROM {wh}.raw_store_polls) AS ids""",
        _POLLS_TABLE.format(wh=wh, text=text, polls_key=polls_key, name="raw_store_polls_keyed"),
        f"""INSERT INTO {wh}.raw_store_polls_keyed (store_key, timestamp_utc, status, load_id, inactive_from_load)
            SELECT k.store_key, p.timestamp_utc, p.status, p.load_id, p.inactive_from_load
            FROM {wh}.raw_store_polls p JOIN {wh}.store_keys k ON k.store_id = p.store_id
            ORDER BY p.timestamp_utc""",
        f"DROP TABLE {wh}.raw_store_polls",
        f"ALTER TABLE {wh}.raw_store_polls_keyed RENAME TO raw_store_polls",
        f"UPDATE {wh}.schema_version SET version = {SCHEMA_VERSION}",
    ]


def _polls_order_by(staged: StagedLoad) -> str:
    """The clause (on the load's polls as ``m``) that stores them time-clustered, unless they
    come so already (ingest.polls_in_time_order)."""
    return "" if staged.polls_in_time_order else "ORDER BY m.timestamp_utc"


def _load_statements(staged: StagedLoad, bounds: tuple | None, retention_days: int) -> list[tuple[str, str]]:
    statements = []
    if staged.loaded(POLLS) and bounds is not None:
        statements += [
            (
                name,
                sql.replace("{keyed}", _KEYED_POLLS)
                .replace("{order_by}", _polls_order_by(staged))
                .replace("{lo}", sql_literal(bounds[0]))
                .replace("{hi}", sql_literal(bounds[1])),
            )
            for name, sql in POLLS_LOAD_SQL
        ]
    if staged.loaded(POLLS) and retention_days > 0:
        statements.append(("polls_expired", RETENTION_SQL.replace("{days}", str(int(retention_days)))))
    if staged.loaded(HOURS):
        statements += HOURS_LOAD_SQL
    if staged.loaded(ZONES):
        statements += ZONES_LOAD_SQL
    return statements


def _record_counts(staged: StagedLoad, counts: dict[str, int]) -> None:
    polls = staged.results[POLLS]
    polls.rows_added = counts.get("polls_added", 0)
    polls.rows_retired = counts.get("polls_expired", 0)
    for source, table in ((HOURS, "raw_business_hours"), (ZONES, "raw_store_timezones")):
        result = staged.results[source]
        result.rows_added = counts.get(f"{table}_added", 0)
        result.rows_retired = counts.get(f"{table}_retired", 0)


class Warehouse:
    """What ingestion, the report and the checks need from a warehouse."""

    kind: str
    location: str  # for messages: the file, or the URL with its password elided
    POLLS_KEYED_BY_ID_SQL: str  # counts a raw_store_polls.store_id column: schema 2, before store keys
    retention_days: int = 35  # each load drops polls this much older than the newest (0: none)

    # Implemented by each backend:
    def commit_load(self, staged: StagedLoad, run_id: str | None, progress: Progress = log.info) -> int: ...
    def load_snapshot(
        self,
        conn: duckdb.DuckDBPyConnection,
        load_id: int | None,
        as_of: datetime | None,
        prepare: Callable[[Snapshot], None],
        stores: StoreRange = ALL_STORES,
    ) -> Snapshot:
        """The snapshot's SNAPSHOT_SQL tables on ``conn``; ``prepare(snapshot)`` runs while
        they are all there, and raw_store_polls is gone after it."""

    def query(self, sql: str) -> list[tuple]: ...

    # Shared:
    def read_progress(self) -> SourceProgress | None:
        """How far the last load read the poll file (None: no load yet)."""
        try:
            return read_progress_with(self.query)
        except NothingIngested:
            return None

    def rejected_rows(self, run_id: str) -> list[tuple[str, int, str]]:
        return self.query(
            "SELECT source_file, line_number, reason FROM {wh}.rejected_rows "
            f"WHERE run_id = {sql_literal(run_id)} ORDER BY source_file, line_number"
        )

    def latest_load(self) -> int | None:
        return self.query("SELECT max(load_id) FROM {wh}.loads")[0][0]

    def newest_poll(self) -> datetime | None:
        return self.query("SELECT max(timestamp_utc) FROM {wh}.raw_store_polls")[0][0]

    def duplicate_poll_keys(self, since_load: int = 0) -> int:
        """Keys with more than one poll row, among keys touched by loads after ``since_load``.

        Only the time range those loads touched is grouped, so the check costs what the new
        polls cost, not the whole history."""
        return self.query(
            f"""
            WITH bounds AS (
                SELECT min(timestamp_utc) AS lo, max(timestamp_utc) AS hi FROM {{wh}}.raw_store_polls WHERE load_id > {since_load})
            SELECT count(*) FROM (
                SELECT 1 FROM {{wh}}.raw_store_polls p, bounds
                WHERE p.timestamp_utc BETWEEN bounds.lo AND bounds.hi
                GROUP BY p.store_key, p.timestamp_utc
                HAVING count(*) > 1 AND max(p.load_id) > {since_load}) AS d
            """
        )[0][0]

    def pin_snapshot(self, load_id: int | None = None, as_of: datetime | None = None) -> Snapshot:
        """The snapshot a report of (load_id, as_of) reads: the latest load and its newest poll
        unless given."""
        return self._resolve_snapshot(self.query, load_id, as_of)

    def shards(self, snapshot: Snapshot, count: int) -> list[StoreRange]:
        """The snapshot's polled stores in ``count`` shards of (nearly) equal store counts
        (fewer if there are fewer stores)."""
        if count <= 1:
            return [ALL_STORES]  # (no need to count the stores)
        starts = self.query(_snapshot_query(SHARD_STARTS_SQL, snapshot).replace("{shards}", str(int(count))))
        return store_ranges([first for first, _ in starts], count, sum(stores for _, stores in starts))

    def _resolve_snapshot(self, run_query, load_id: int | None, as_of: datetime | None) -> Snapshot:
        latest = run_query("SELECT max(load_id) FROM {wh}.loads")[0][0]
        if latest is None:
            raise NothingIngested(f"no polls have been ingested into {self.location}: there is nothing to report on")
        if run_query(self.POLLS_KEYED_BY_ID_SQL)[0][0]:
            raise WarehouseError(
                f"{self.location} was written by an older storemon (polls keyed by store id); "
                "its next ingest upgrades it in place, then it can be reported on"
            )
        if load_id is None:
            load_id = latest
        elif not run_query(f"SELECT 1 FROM {{wh}}.loads WHERE load_id = {int(load_id)}"):
            raise NothingIngested(f"snapshot {load_id} is not a load of {self.location} (the latest is {latest})")
        if as_of is None:
            as_of = run_query(f"SELECT max(timestamp_utc) FROM {{wh}}.raw_store_polls WHERE load_id <= {int(load_id)}")[
                0
            ][0]
            if as_of is None:
                raise NothingIngested(f"no polls have been ingested into {self.location} up to load {load_id}")
        return Snapshot(load_id=int(load_id), as_of=as_of)


# -- embedded DuckDB ---------------------------------------------------------------------


def _is_lock_error(error: Exception) -> bool:
    return "lock" in str(error).lower() and (
        "conflicting" in str(error).lower() or "could not set" in str(error).lower()
    )


class DuckDBWarehouse(Warehouse):
    kind = "duckdb"
    POLLS_KEYED_BY_ID_SQL = (
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = '{wh}' "
        "AND table_name = 'raw_store_polls' AND column_name = 'store_id'"
    )

    def __init__(self, path: Path, lock_timeout: float = 60.0, progress: Progress = log.info):
        self.path = Path(path)
        self.location = str(self.path)
        self.lock_timeout = lock_timeout
        self.progress = progress

    def _check_file(self) -> None:
        """Fail at once, naming the file, on what DuckDB would otherwise misread or hang on."""
        problem = duckdb_file_problem(self.path)
        if problem:
            raise WarehouseError(problem)

    @contextmanager
    def attached(self, conn: duckdb.DuckDBPyConnection, read_only: bool) -> Iterator[None]:
        """Attach the file as ``wh`` to ``conn``, waiting while another process holds it."""
        self._check_file()
        if read_only and not self.path.exists():
            raise NothingIngested(f"no polls have been ingested: {self.path} does not exist yet")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = " (READ_ONLY)" if read_only else ""
        deadline, told = time.monotonic() + self.lock_timeout, False
        while True:
            try:
                conn.execute(f"ATTACH '{self.path}' AS wh{mode}")
                break
            except duckdb.Error as error:
                if not _is_lock_error(error):
                    raise WarehouseError(f"{self.path}: cannot be opened as a DuckDB database: {error}") from None
                if time.monotonic() > deadline:
                    raise WarehouseError(
                        f"{self.path}: still held by another process after {self.lock_timeout:.0f} s "
                        f"({'a writer' if read_only else 'a reader or writer'}); try again later"
                    ) from None
                if not told:
                    self.progress(
                        f"{self.path} is held by another process; waiting up to {self.lock_timeout:.0f} s "
                        f"to open it {'read-only' if read_only else 'for writing'}"
                    )
                    told = True
                time.sleep(0.1)
        try:
            if not read_only:
                self._ensure_schema(conn)
            else:
                self._check_schema(conn)
            yield
        except duckdb.Error as error:
            if is_no_space(error):
                raise no_space_error(self.path.parent, error) from None
            raise WarehouseError(f"{self.path}: {str(error).strip().splitlines()[0]}") from None
        finally:
            try:
                conn.execute("DETACH wh")
            except duckdb.Error:
                pass

    def _ensure_schema(self, conn) -> None:
        self._check_schema(conn)
        keyed_by_id = fetch_value(conn, self.POLLS_KEYED_BY_ID_SQL.replace("{wh}", "wh"))
        conn.begin()
        try:
            conn.execute(_tables_sql("wh", "VARCHAR"))
            if keyed_by_id:
                for sql in _store_keys_upgrade_sql("wh", "VARCHAR"):
                    conn.execute(sql)
            if fetch_value(conn, "SELECT count(*) FROM wh.schema_version") == 0:
                conn.execute(f"INSERT INTO wh.schema_version VALUES ({SCHEMA_VERSION})")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _check_schema(self, conn) -> None:
        tables = {
            row[0]
            for row in conn.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'wh'").fetchall()
        }
        if "raw_store_polls" in tables and "schema_version" not in tables:
            raise WarehouseError(
                f"{self.path} was written by an older storemon (no load ids); remove it and ingest again"
            )

    def _run(self, conn, sql: str) -> list[tuple]:
        return conn.execute(sql.replace("{wh}", "wh")).fetchall()

    def query(self, sql: str) -> list[tuple]:
        with configure(duckdb.connect()) as conn, self.attached(conn, read_only=True):
            if not fetch_value(
                conn, "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'wh' AND table_name = 'loads'"
            ):
                raise NothingIngested(f"no polls have been ingested into {self.path}")
            return self._run(conn, sql)

    def commit_load(self, staged: StagedLoad, run_id: str | None, progress: Progress = log.info) -> int:
        conn = staged.conn
        bounds = staged_bounds(staged)
        with self.attached(conn, read_only=False):
            conn.begin()
            try:
                load_id = _commit(
                    staged,
                    run_id,
                    bounds,
                    lambda sql: self._run(conn, sql),
                    read_progress_with(lambda sql: self._run(conn, sql)),
                    self.retention_days,
                )
                conn.commit()
            except BaseException:
                try:
                    conn.rollback()
                except duckdb.Error:
                    pass  # DuckDB already ended a transaction that failed to commit
                raise
        return load_id

    def load_snapshot(
        self, conn, load_id: int | None, as_of: datetime | None, prepare, stores: StoreRange = ALL_STORES
    ) -> Snapshot:
        with self.attached(conn, read_only=True):
            snapshot = self._resolve_snapshot(lambda sql: self._run(conn, sql), load_id, as_of)
            for table, sql in SNAPSHOT_SQL.items():
                query = _snapshot_query(sql, snapshot, stores).replace("{wh}", "wh")
                # The polls are read in place: prepare keys them into its own table.
                kind = "VIEW" if table == "raw_store_polls" else "TABLE"
                conn.execute(f"CREATE OR REPLACE {kind} {table} AS {query}")
            try:
                prepare(snapshot)
            finally:
                conn.execute("DROP VIEW raw_store_polls")
        return snapshot


def _snapshot_query(sql: str, snapshot: Snapshot, stores: StoreRange | StoreSample = ALL_STORES) -> str:
    return (
        sql.replace("{load}", str(snapshot.load_id))
        .replace("{as_of}", sql_literal(snapshot.as_of))
        .replace("{store_keys}", key_condition(stores.condition()))
        .replace("{stores}", stores.condition())
    )


def _commit(
    staged: StagedLoad,
    run_id,
    bounds,
    run,
    progress_now: SourceProgress | None,
    retention_days: int,
    copy_polls: Callable[[int], int] | None = None,
) -> int:
    """The load's statements, inside the caller's transaction; returns the new load id.
    ``copy_polls(load_id)`` (a load whose time range holds no stored poll) adds every polls
    row itself and returns their number, instead of the polls' statements."""
    if staged.loaded(POLLS) and progress_now != staged.progress_seen:
        raise WarehouseError(
            "another load of the poll file committed while this one was being read; run the ingest again"
        )
    load_id = run("SELECT coalesce(max(load_id), 0) + 1 FROM {wh}.loads")[0][0]
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    counts = {}
    if staged.loaded(POLLS) and bounds is not None:
        name, sql = STORE_KEYS_LOAD_SQL
        counts[name] = run(sql)[0][0]
    if copy_polls is not None:
        counts["polls_added"] = copy_polls(load_id)
        bounds = None  # (no statement for the polls)
    for name, sql in _load_statements(staged, bounds, retention_days):
        rows = run(sql.replace("{load}", str(load_id)))
        counts[name] = rows[0][0] if rows and rows[0] and rows[0][0] is not None else 0
    run(
        REJECTIONS_LOAD_SQL.replace("{run_id}", sql_literal(run_id))
        .replace("{load}", str(load_id))
        .replace("{now}", sql_literal(now))
    )
    after = staged.progress_after
    if staged.loaded(POLLS) and after is not None:
        run("DELETE FROM {wh}.source_progress WHERE source = 'store_status'")
        run(
            "INSERT INTO {wh}.source_progress VALUES ('store_status', "
            + ", ".join(
                sql_literal(v) for v in (after.path, after.byte_offset, after.next_line, after.fingerprint, now)
            )
            + ")"
        )
    _record_counts(staged, counts)
    rejected = sum(result.rows_rejected for result in staged.results.values())
    run(
        "INSERT INTO {wh}.loads VALUES ("
        + ", ".join(
            sql_literal(v)
            for v in (
                load_id,
                run_id,
                now,
                counts.get("polls_added", 0),
                counts.get("polls_inactivated", 0),
                counts.get("raw_business_hours_added", 0) + counts.get("raw_business_hours_retired", 0),
                counts.get("raw_store_timezones_added", 0) + counts.get("raw_store_timezones_retired", 0),
                rejected,
            )
        )
        + ")"
    )
    totals = run(
        "SELECT (SELECT count(*) FROM {wh}.raw_store_polls), "
        "(SELECT count(*) FROM {wh}.raw_business_hours WHERE retired_load IS NULL), "
        "(SELECT count(*) FROM {wh}.raw_store_timezones WHERE retired_load IS NULL)"
    )[0]
    for source, total in zip((POLLS, HOURS, ZONES), totals):
        if staged.loaded(source):
            staged.results[source].total_rows = total
    return load_id


# -- PostgreSQL --------------------------------------------------------------------------


def _copy_to_postgres(duck: duckdb.DuckDBPyConnection, query: str, cur, target: str, scratch: Path) -> int:
    """A DuckDB query's rows COPYed into a Postgres table (``target``: a table, with columns
    if not all); the number of rows."""
    path = scratch / "copy.csv"
    duck.execute(f"COPY ({query}) TO '{path}' (FORMAT csv, HEADER false)")
    with open(path, "rb") as data:
        cur.copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv)", data)
    os.unlink(path)
    return cur.rowcount


def _copy_from_postgres(cur, query: str, duck: duckdb.DuckDBPyConnection, table: str, columns: dict, scratch: Path):
    """A Postgres query's rows COPYed out into a DuckDB table of ``columns`` (name: type)."""
    path = scratch / f"{table}.csv"
    with open(path, "wb") as out:
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", out)
    spec = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"
    duck.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_csv('{path}', header = false, "
        f"columns = {spec}, auto_detect = false, quote = '\"', escape = '\"', "
        "nullstr = '', allow_quoted_nulls = false, strict_mode = true)"
    )
    os.unlink(path)


# The snapshot's polls leave Postgres in its binary COPY format: as text, Postgres would
# format every timestamp and DuckDB parse it again. Selected as (store_key, timestamp_utc,
# active) with no NULL, every row has the same width, so numpy reads a block of rows at once.
# Format: https://www.postgresql.org/docs/current/sql-copy.html ("Binary Format").
_PG_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, then no flags and no header extension
_PG_BINARY_TRAILER = b"\xff\xff"
_PG_EPOCH_MICROSECONDS = 946_684_800_000_000  # Postgres counts timestamps from 2000-01-01
_POLL_BLOCK_ROWS = 1 << 20
_UNKNOWN_POLL_LAYOUT = "the Postgres warehouse sent the snapshot's polls in a layout other than binary COPY's"


def _copy_polls_from_postgres(
    cur, query: str, duck: duckdb.DuckDBPyConnection, table: str, columns: dict, scratch: Path
):
    """The snapshot's polls (``query``: store_key, timestamp_utc, status) COPYed out of
    Postgres in its binary format into a DuckDB table of ``columns``, a block of rows at a time."""
    import numpy as np

    # A row: its number of fields, then each field's length in bytes and value; all big-endian.
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("store_key_bytes", ">i4"),
            ("store_key", ">i4"),
            ("timestamp_bytes", ">i4"),
            ("microseconds_since_2000", ">i8"),
            ("active_bytes", ">i4"),
            ("active", "u1"),
        ]
    )
    path = scratch / f"{table}.bin"
    with open(path, "wb") as out:
        cur.copy_expert(
            f"COPY (SELECT store_key, timestamp_utc, status = 'active' FROM ({query}) AS polls) "
            "TO STDOUT WITH (FORMAT binary)",
            out,
        )
    data_bytes = path.stat().st_size - len(_PG_BINARY_HEADER) - len(_PG_BINARY_TRAILER)
    rows = data_bytes // row.itemsize  # (a remainder is left before the trailer: refused there)
    spec = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    duck.execute(f"CREATE OR REPLACE TABLE {table} ({spec})")
    with open(path, "rb") as data:
        if data.read(len(_PG_BINARY_HEADER)) != _PG_BINARY_HEADER:
            raise WarehouseError(_UNKNOWN_POLL_LAYOUT)
        while rows:
            block = np.fromfile(data, dtype=row, count=min(rows, _POLL_BLOCK_ROWS))
            rows -= len(block)
            widths = (block["fields"] == 3) & (block["store_key_bytes"] == 4) & (block["timestamp_bytes"] == 8)
            if len(block) == 0 or not (widths & (block["active_bytes"] == 1)).all():
                raise WarehouseError(_UNKNOWN_POLL_LAYOUT)
            polls = {
                "store_key": block["store_key"].astype(np.int32),
                "microseconds": block["microseconds_since_2000"] + _PG_EPOCH_MICROSECONDS,
                "active": block["active"].astype(np.bool_),
            }
            duck.register("poll_block", polls)
            duck.execute(
                f"INSERT INTO {table} SELECT store_key, make_timestamp(microseconds), "
                "CASE WHEN active THEN 'active' ELSE 'inactive' END FROM poll_block"
            )
            duck.unregister("poll_block")
        if data.read() != _PG_BINARY_TRAILER:
            raise WarehouseError(_UNKNOWN_POLL_LAYOUT)
    os.unlink(path)


_PG_SCHEMA = "storemon"
_STAGED_FOR_PG = {
    "merged_store_ids": ("SELECT store_id FROM merged_store_ids", "store_id text"),
    "merged_polls": (
        "SELECT store_id, timestamp_utc, status FROM merged_polls",
        "store_id text, timestamp_utc timestamp, status text",
    ),
    "staged_hours": (
        "SELECT store_id, day_of_week, start_time_local, end_time_local FROM staged_hours",
        "store_id text, day_of_week smallint, start_time_local time, end_time_local time",
    ),
    "staged_zones": ("SELECT store_id, timezone_str FROM staged_zones", "store_id text, timezone_str text"),
    "staged_rejections": (
        "SELECT source, source_file, line_number, reason, raw_values FROM staged_rejections",
        "source text, source_file text, line_number bigint, reason text, raw_values text",
    ),
}


class PostgresWarehouse(Warehouse):
    kind = "postgres"
    POLLS_KEYED_BY_ID_SQL = (
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{wh}' "
        "AND table_name = 'raw_store_polls' AND column_name = 'store_id'"
    )

    def __init__(self, url: str, progress: Progress = log.info):
        self.url = url
        self.location = redact(url)
        self.progress = progress

    @contextmanager
    def connection(self, isolation: str | None = None, readonly: bool = False):
        import psycopg2

        try:
            conn = psycopg2.connect(self.url, connect_timeout=10, application_name="storemon")
        except psycopg2.OperationalError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise WarehouseError(f"cannot reach the Postgres warehouse at {self.location}: {first_line}") from None
        try:
            if isolation or readonly:
                conn.set_session(isolation_level=isolation, readonly=readonly)
            yield conn
        finally:
            conn.close()

    def _run(self, cur, sql: str) -> list[tuple]:
        cur.execute(sql.replace("{wh}", _PG_SCHEMA))
        if cur.description is None:
            return [(cur.rowcount,)]
        return cur.fetchall()

    def ensure_schema(self) -> None:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7007)")  # two first loads must not both create
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_PG_SCHEMA}")
            # Byte order (collation "C"): as DuckDB sorts, and several times faster to index than a locale.
            # Time first: a load's polls, inserted in time order, then append to the key's index
            # instead of landing all over it, and the key alone serves every time-range lookup.
            text, polls_key = 'text COLLATE "C"', ", PRIMARY KEY (timestamp_utc, store_key)"
            cur.execute(
                _tables_sql(_PG_SCHEMA, text, polls_key, store_keys_key=", PRIMARY KEY (store_key), UNIQUE (store_id)")
            )
            if self._run(cur, self.POLLS_KEYED_BY_ID_SQL)[0][0]:
                for sql in _store_keys_upgrade_sql(_PG_SCHEMA, text, polls_key):
                    cur.execute(sql)
                # (The dropped table's key index took the name with it; the new one's follows its table.)
                cur.execute(f"ALTER INDEX {_PG_SCHEMA}.raw_store_polls_keyed_pkey RENAME TO raw_store_polls_pkey")
            cur.execute(f"SELECT count(*) FROM {_PG_SCHEMA}.schema_version")
            if cur.fetchone()[0] == 0:
                cur.execute(f"INSERT INTO {_PG_SCHEMA}.schema_version VALUES ({SCHEMA_VERSION})")
            conn.commit()

    def _has_schema(self, cur) -> bool:
        cur.execute("SELECT to_regclass(%s)", [f"{_PG_SCHEMA}.loads"])
        return cur.fetchone()[0] is not None

    def query(self, sql: str) -> list[tuple]:
        with self.connection(readonly=True) as conn, conn.cursor() as cur:
            if not self._has_schema(cur):
                raise NothingIngested(f"no polls have been ingested into {self.location}")
            return self._run(cur, sql)

    def commit_load(self, staged: StagedLoad, run_id: str | None, progress: Progress = log.info) -> int:
        self.ensure_schema()
        bounds = staged_bounds(staged)
        with tempfile.TemporaryDirectory(prefix="storemon-load-") as scratch, self.connection() as conn:
            with conn.cursor() as cur:
                # One load at a time, committed in id order.
                cur.execute(f"LOCK TABLE {_PG_SCHEMA}.loads IN EXCLUSIVE MODE")
                run = lambda sql: self._run(cur, sql)  # noqa: E731
                # Where no stored poll lies in the load's time range, the load adds every poll
                # and overrides none: the polls are copied straight into the table, without a
                # staging table and the lookup of each key.
                straight = (
                    bounds is not None
                    and not run(
                        f"SELECT EXISTS (SELECT 1 FROM {{wh}}.raw_store_polls "
                        f"WHERE timestamp_utc BETWEEN {sql_literal(bounds[0])} AND {sql_literal(bounds[1])})"
                    )[0][0]
                )
                for table, (query, columns) in _STAGED_FOR_PG.items():
                    if straight and table == "merged_polls":
                        continue
                    cur.execute(f"CREATE TEMP TABLE {table} ({columns}) ON COMMIT DROP")
                    _copy_to_postgres(staged.conn, query, cur, table, Path(scratch))
                    cur.execute(f"ANALYZE {table}")  # temp tables have no statistics until analyzed

                def copy_polls(load_id: int) -> int:
                    # The keys of the load's stores (all in store_keys by now), then its polls under them.
                    _copy_from_postgres(
                        cur,
                        f"SELECT k.store_key, k.store_id FROM {_PG_SCHEMA}.store_keys k JOIN merged_store_ids USING (store_id)",
                        staged.conn,
                        "load_store_keys",
                        SNAPSHOT_COLUMNS["store_keys"],
                        Path(scratch),
                    )
                    return _copy_to_postgres(
                        staged.conn,
                        f"SELECT k.store_key, m.timestamp_utc, m.status, {int(load_id)} "
                        f"FROM merged_polls m JOIN load_store_keys k USING (store_id) {_polls_order_by(staged)}",
                        cur,
                        f"{_PG_SCHEMA}.raw_store_polls (store_key, timestamp_utc, status, load_id)",
                        Path(scratch),
                    )

                load_id = _commit(
                    staged,
                    run_id,
                    bounds,
                    run,
                    read_progress_with(run),
                    self.retention_days,
                    copy_polls if straight else None,
                )
            conn.commit()
        return load_id

    def load_snapshot(
        self, conn, load_id: int | None, as_of: datetime | None, prepare, stores: StoreRange = ALL_STORES
    ) -> Snapshot:
        with self.connection(isolation="REPEATABLE READ", readonly=True) as pg, pg.cursor() as cur:
            if not self._has_schema(cur):
                raise NothingIngested(
                    f"no polls have been ingested into {self.location}: there is nothing to report on"
                )
            snapshot = self._resolve_snapshot(lambda sql: self._run(cur, sql), load_id, as_of)
            with tempfile.TemporaryDirectory(prefix="storemon-snapshot-") as scratch:
                for table, sql in SNAPSHOT_SQL.items():
                    query = _snapshot_query(sql, snapshot, stores).replace("{wh}", _PG_SCHEMA)
                    copy = _copy_polls_from_postgres if table == "raw_store_polls" else _copy_from_postgres
                    copy(cur, query, conn, table, SNAPSHOT_COLUMNS[table], Path(scratch))
            pg.commit()
        try:
            prepare(snapshot)
        finally:
            conn.execute("DROP TABLE raw_store_polls")
        return snapshot


def open_warehouse(settings: Settings, progress: Progress = log.info) -> Warehouse:
    if settings.embedded:
        warehouse = DuckDBWarehouse(settings.database, lock_timeout=settings.lock_timeout_seconds, progress=progress)
    else:
        warehouse = PostgresWarehouse(settings.warehouse, progress=progress)
    warehouse.retention_days = settings.retention_days
    return warehouse
