"""One ingest load: the three source files, parsed and validated, committed in one transaction.

A load is staged first in a private in-memory DuckDB (no lock on the warehouse is held while
files are read and validated), then handed to the warehouse, which commits it whole or not at
all and gives it the next load id. Every poll row carries the id of the load that added it,
so a report can be recomputed later from exactly the polls a past load had seen.

A source file that cannot be used at all (missing, empty, wrong header) leaves that source
as it was; the others still load, and the error is returned with the load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from storemon_pipeline.core import sources, validation
from storemon_pipeline.core.db import configure, fetch_row, fetch_value

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

# The three sources (sources.SourceSpec names).
POLLS, HOURS, ZONES = "store_status", "business_hours", "timezones"
REJECTION_PREVIEW_ROWS = 10
TIME_ORDER_BLOCK_ROWS = 122_880  # a DuckDB row group

STAGE_SQL = """
-- Every poll row read, checked (validation.check_lines); reason is '' for a good one.
CREATE TABLE checked_polls (
    line_number BIGINT, store_id VARCHAR, status VARCHAR, timestamp_utc TIMESTAMP,
    malformed VARCHAR, reason VARCHAR, raw_values VARCHAR
);
CREATE VIEW staged_polls AS
SELECT store_id, timestamp_utc, status, line_number FROM checked_polls WHERE reason = '';
CREATE TABLE merged_polls (
    store_id VARCHAR, timestamp_utc TIMESTAMP, status VARCHAR, copies BIGINT, conflicting BOOLEAN
);
-- The read's store ids, which the warehouse gives keys to (warehouse.STORE_KEYS_LOAD_SQL).
CREATE VIEW merged_store_ids AS SELECT DISTINCT store_id FROM merged_polls;
CREATE TABLE staged_hours (store_id VARCHAR, day_of_week TINYINT, start_time_local TIME, end_time_local TIME);
CREATE TABLE staged_zones (store_id VARCHAR, timezone_str VARCHAR);
CREATE TABLE staged_rejections (
    source VARCHAR, source_file VARCHAR, line_number BIGINT, reason VARCHAR, raw_values VARCHAR
);
"""


@dataclass
class IngestResult:
    """What one load did to one source."""

    source: str
    source_file: str = ""
    rows_read: int = 0
    rows_added: int = 0
    rows_rejected: int = 0
    duplicate_rows: int = 0  # rows whose key (and value) was already seen in this read
    conflicting_rows: int = 0  # rows whose key was seen with another value
    rows_retired: int = 0  # hours and zones: rows no longer in the file; polls: older than the retention
    mode: str = "full"  # "full" or "incremental"
    total_rows: int = 0
    first_rejections: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), in line order
    warnings: list[str] = field(default_factory=list)  # what a user should know though nothing failed
    error: str | None = None  # the whole file could not be used; the source kept its data

    def summary(self) -> str:
        if self.error:
            return f"{self.source}: not loaded, previous data kept: {self.error}"
        return (
            f"{self.source_file}: read {self.rows_read:,} rows ({self.mode}), added {self.rows_added:,}, "
            f"rejected {self.rows_rejected:,}, duplicates {self.duplicate_rows:,}, "
            f"conflicting duplicates {self.conflicting_rows:,}; table now has {self.total_rows:,} rows"
        )


@dataclass
class SourceProgress:
    """How far an uncompressed poll file was read by the last load."""

    path: str
    byte_offset: int
    next_line: int
    fingerprint: str


@dataclass
class StagedLoad:
    """A load ready to commit: staging tables in ``conn`` plus what the warehouse needs."""

    conn: duckdb.DuckDBPyConnection
    results: dict[str, IngestResult]
    progress_seen: SourceProgress | None  # what the warehouse said before staging
    progress_after: SourceProgress | None  # what to store (None: polls not loaded)
    polls_in_time_order: bool = False  # see polls_in_time_order()

    def loaded(self, source: str) -> bool:
        return self.results[source].error is None

    def close(self) -> None:
        self.conn.close()


@dataclass
class LoadOutcome:
    load_id: int
    results: dict[str, IngestResult]

    @property
    def errors(self) -> list[str]:
        return [result.error for result in self.results.values() if result.error]


def source_files(
    spec: sources.SourceSpec, source_dir: Path, explicit: dict[str, tuple[Path, ...]] | None
) -> list[Path]:
    """The files of one source: the explicit ones if given (any names), else the one file in
    ``source_dir`` with one of the known names."""
    given = (explicit or {}).get(spec.name)
    if given:
        return [sources.usable_file(Path(path)) for path in given]
    return [sources.find_source_file(spec, Path(source_dir))]


def stage(
    source_dir: Path,
    progress_seen: SourceProgress | None,
    progress: Progress = log.info,
    files: dict[str, tuple[Path, ...]] | None = None,
) -> StagedLoad:
    conn = configure(duckdb.connect())
    conn.execute(STAGE_SQL)
    results = {}
    progress_after = None
    # Hours and zones are read beside the polls, on a second connection to the same staging
    # database: reading a gzip poll file keeps one core busy with the decompression alone.
    with conn.cursor() as second, ThreadPoolExecutor(max_workers=1) as beside:
        hours_and_zones = beside.submit(_stage_hours_and_zones, second, source_dir, files)
        in_time_order = False
        try:
            poll_files = source_files(sources.STORE_STATUS, source_dir, files)
            results[POLLS], progress_after = _stage_polls(conn, poll_files, progress_seen, progress)
            _first_rejections(conn, results[POLLS])
            in_time_order = polls_in_time_order(conn, results[POLLS])
        except sources.SourceError as error:
            results[POLLS] = IngestResult(source=POLLS, error=str(error))
        results.update(hours_and_zones.result())
    return StagedLoad(conn, results, progress_seen, progress_after, polls_in_time_order=in_time_order)


def _stage_hours_and_zones(
    conn, source_dir: Path, files: dict[str, tuple[Path, ...]] | None
) -> dict[str, IngestResult]:
    results = {}
    for spec, stage_source in ((sources.BUSINESS_HOURS, _stage_hours), (sources.TIMEZONES, _stage_zones)):
        try:
            paths = source_files(spec, source_dir, files)
            if len(paths) != 1:
                raise sources.SourceError(f"one {spec.name} file is needed; {len(paths)} were given")
            results[spec.name] = stage_source(conn, paths[0])
            _first_rejections(conn, results[spec.name])
        except sources.SourceError as error:
            results[spec.name] = IngestResult(source=spec.name, error=str(error))
    return results


def _read_and_check(
    conn, spec: sources.SourceSpec, path: Path, header: sources.Header, start_offset: int, first_line: int, checked: str
) -> tuple[IngestResult, sources.LinesRead]:
    """Read a file's lines from ``start_offset`` and check them into the table ``checked``."""
    lines = sources.read_lines(conn, path, header, start_offset, first_line, table=f"{spec.name}_lines")
    counts = validation.check_lines(conn, spec, header, lines.table, checked, str(path))
    sources.drop_lines(conn, lines.table)
    result = IngestResult(
        source=spec.name, source_file=str(path), rows_read=counts.rows_read, rows_rejected=counts.rows_rejected
    )
    if lines.damage:
        result.warnings.append(lines.damage)
    return result, lines


def _no_data_rows(path: Path, spec: sources.SourceSpec) -> sources.SourceError:
    return sources.SourceError(
        f"{path}: the file has a header but no data rows; expected columns {spec.expected_columns}"
    )


def _first_rejections(conn, result: IngestResult) -> None:
    result.first_rejections = conn.execute(
        "SELECT line_number, reason FROM staged_rejections WHERE source = ? ORDER BY line_number LIMIT ?",
        [result.source, REJECTION_PREVIEW_ROWS],
    ).fetchall()


# ---------------------------------------------------------------------------------------
# Polls: appended, idempotent on (store_id, timestamp_utc), incremental where possible.


def _resume_point(path: Path, header: sources.Header, seen: SourceProgress | None) -> tuple[int, int, str]:
    """Where to start reading: (byte offset, its line number, mode)."""
    if seen and not sources.is_gzip(path) and seen.path == str(path):
        if path.stat().st_size >= seen.byte_offset and sources.fingerprint(path, seen.byte_offset) == seen.fingerprint:
            return seen.byte_offset, seen.next_line, "incremental"
    return header.data_offset, 2, "full"


def _stage_polls(
    conn, paths: list[Path], seen: SourceProgress | None, progress: Progress
) -> tuple[IngestResult, SourceProgress | None]:
    """One or more poll files (e.g. a dataset split in parts). Only a single plain file is
    read incrementally; several are read whole each time (still adding only new keys)."""
    spec = sources.STORE_STATUS
    result = IngestResult(source=POLLS, source_file=", ".join(str(path) for path in paths), mode="full")
    after = None
    for index, path in enumerate(paths):
        header = sources.read_header(path, spec)
        start_offset, first_line, mode = _resume_point(path, header, seen if len(paths) == 1 else None)
        # The first file's checked rows are the table staged_polls shows; later files' are appended.
        checked = "checked_polls" if index == 0 else "checked_polls_part"
        part, lines = _read_and_check(conn, spec, path, header, start_offset, first_line, checked)
        if mode == "full" and part.rows_read == 0:
            raise _no_data_rows(path, spec)
        if index > 0:
            conn.execute(
                "INSERT INTO checked_polls BY NAME SELECT * FROM checked_polls_part; DROP TABLE checked_polls_part"
            )
        result.mode = mode
        result.rows_read += part.rows_read
        result.rows_rejected += part.rows_rejected
        result.warnings += part.warnings
        progress(f"{path.name}: read up to line {lines.next_line - 1:,} ({part.rows_read:,} rows, {mode})")
        if len(paths) == 1:
            fingerprint = "" if sources.is_gzip(path) else sources.fingerprint(path, lines.end_offset)
            after = SourceProgress(str(path), lines.end_offset, lines.next_line, fingerprint)
    merge_staged_polls(conn, result)
    return result, after


def merge_staged_polls(conn: duckdb.DuckDBPyConnection, result: IngestResult) -> None:
    """Collapse staged rows to one per key: ``merged_polls``.

    Two polls of a store at the same instant with different statuses count as one inactive
    poll, here and across loads: the warehouse holds one row per (store_id, timestamp_utc),
    which the report's SQL relies on.
    """
    # Usually every key is new to the read: then no two rows share even the key's hash, and
    # the staged rows are the merged ones (grouping a million string keys costs three times
    # this check). Rows that share a hash are grouped exactly.
    if fetch_value(conn, "SELECT count(DISTINCT hash(store_id, timestamp_utc)) = count(*) FROM staged_polls"):
        conn.execute(
            "DROP TABLE IF EXISTS merged_polls; CREATE VIEW merged_polls AS SELECT store_id, timestamp_utc, status, "
            "CAST(1 AS BIGINT) AS copies, false AS conflicting FROM staged_polls"
        )
        result.duplicate_rows, result.conflicting_rows = 0, 0
    else:
        _group_staged_polls(conn, result)


def _group_staged_polls(conn: duckdb.DuckDBPyConnection, result: IngestResult) -> None:
    conn.execute(
        """
        CREATE OR REPLACE TABLE merged_polls AS
        SELECT store_id, timestamp_utc,
               CASE WHEN bool_or(status = 'inactive') THEN 'inactive' ELSE 'active' END AS status,
               count(*) AS copies,
               -- (not count(DISTINCT status): that costs 4x the whole grouping on 1.8M rows)
               bool_or(status = 'inactive') AND bool_or(status = 'active') AS conflicting
        FROM staged_polls GROUP BY store_id, timestamp_utc
        """
    )
    result.duplicate_rows, result.conflicting_rows = fetch_row(
        conn,
        "SELECT coalesce(sum(copies - 1) FILTER (WHERE NOT conflicting), 0), "
        "coalesce(sum(copies) FILTER (WHERE conflicting), 0) FROM merged_polls",
    )


def polls_in_time_order(conn: duckdb.DuckDBPyConnection, result: IngestResult) -> bool:
    """Whether ``merged_polls`` already comes in time order, block by block, as a poller that
    appends each hour writes its file. The warehouse then stores the polls as they come,
    time-clustered by row group, without sorting them. Blocks are row groups of the staged
    polls in file order; each may end at most an hour after the next begins. Merged
    duplicates come grouped, in no order."""
    if result.duplicate_rows or result.conflicting_rows:
        return False
    return fetch_value(
        conn,
        f"""
        WITH blocks AS (
            SELECT rowid // {TIME_ORDER_BLOCK_ROWS} AS block, min(timestamp_utc) AS first, max(timestamp_utc) AS last
            FROM checked_polls WHERE reason = '' GROUP BY block
        )
        SELECT coalesce(bool_and(last <= next_first + INTERVAL 1 HOUR), true)
        FROM (SELECT last, lead(first) OVER (ORDER BY block) AS next_first FROM blocks)
        WHERE next_first IS NOT NULL
        """,
    )


# ---------------------------------------------------------------------------------------
# Business hours and time zones: small and may change, so each load states them whole; the
# warehouse keeps the versions (which load added and which retired each row).


def _read_whole(conn, spec: sources.SourceSpec, path: Path, checked: str) -> IngestResult:
    header = sources.read_header(path, spec)
    result, _ = _read_and_check(conn, spec, path, header, header.data_offset, 2, checked)
    if result.rows_read == 0:
        raise _no_data_rows(path, spec)
    return result


def _stage_hours(conn, path: Path) -> IngestResult:
    result = _read_whole(conn, sources.BUSINESS_HOURS, path, "checked_hours")
    # Exact duplicates say nothing new: the hours of a day are a union.
    conn.execute(
        """
        INSERT INTO staged_hours
        SELECT DISTINCT store_id, day_of_week, start_time_local, end_time_local
        FROM checked_hours WHERE reason = '' ORDER BY ALL
        """
    )
    valid_rows = result.rows_read - result.rows_rejected
    # A store whose every hours row was rejected would silently count as open 24x7.
    lost = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT store_id FROM checked_hours WHERE reason <> '' AND coalesce(store_id, '') <> '' "
            "AND store_id NOT IN (SELECT store_id FROM checked_hours WHERE reason = '') ORDER BY 1"
        ).fetchall()
    ]
    if lost:
        shown = ", ".join(store[:40] for store in lost[:10]) + (", ..." if len(lost) > 10 else "")
        result.warnings.append(
            f"{len(lost):,} store(s) lost every business-hours row to rejection and count as open 24x7 "
            f"until their rows are fixed: {shown}"
        )
    conn.execute("DROP TABLE checked_hours")
    result.total_rows = fetch_value(conn, "SELECT count(*) FROM staged_hours")
    result.duplicate_rows = valid_rows - result.total_rows
    return result


# One zone per store: repeats of the same zone are harmless; a different zone for a store
# already seen is rejected, naming the line whose zone was kept.
ZONE_CONFLICTS_SQL = [
    """
    CREATE OR REPLACE TEMP TABLE zone_lines AS
    SELECT store_id, timezone_str, line_number,
           first_value(timezone_str) OVER w AS kept_zone, first_value(line_number) OVER w AS kept_line
    FROM checked_zones WHERE reason = '' WINDOW w AS (PARTITION BY store_id ORDER BY line_number)
    """,
    """
    INSERT INTO staged_rejections
    SELECT 'timezones', $source_file, line_number,
           format('timezone_str ''{}'' conflicts with line {} for the same store; line {} was kept', timezone_str, kept_line, kept_line),
           store_id || ',' || timezone_str
    FROM zone_lines WHERE timezone_str <> kept_zone ORDER BY line_number
    """,
    "INSERT INTO staged_zones SELECT store_id, timezone_str FROM zone_lines WHERE line_number = kept_line ORDER BY store_id",
]


def _stage_zones(conn, path: Path) -> IngestResult:
    result = _read_whole(conn, sources.TIMEZONES, path, "checked_zones")
    for sql in ZONE_CONFLICTS_SQL:
        conn.execute(sql, {"source_file": result.source_file} if "$source_file" in sql else None)
    result.duplicate_rows, result.conflicting_rows = fetch_row(
        conn,
        "SELECT count(*) FILTER (WHERE line_number <> kept_line AND timezone_str = kept_zone), "
        "count(*) FILTER (WHERE timezone_str <> kept_zone) FROM zone_lines",
    )
    result.rows_rejected += result.conflicting_rows
    result.total_rows = fetch_value(conn, "SELECT count(*) FROM staged_zones")
    conn.execute("DROP TABLE zone_lines; DROP TABLE checked_zones")
    return result


def ingest(
    warehouse,
    source_dir: Path,
    run_id: str | None = None,
    progress: Progress = log.info,
    files: dict[str, tuple[Path, ...]] | None = None,
) -> LoadOutcome:
    """Stage the three sources and commit them as one load; returns its id and per-source
    results. ``files`` names a source's files explicitly (source name -> paths)."""
    staged = stage(source_dir, warehouse.read_progress(), progress, files)
    try:
        load_id = warehouse.commit_load(staged, run_id, progress)
    finally:
        staged.close()
    return LoadOutcome(load_id=load_id, results=staged.results)
