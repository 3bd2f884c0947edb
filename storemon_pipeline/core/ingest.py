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
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING, Any

import duckdb

from storemon_pipeline.core.db import configure, fetch_row, fetch_value

if TYPE_CHECKING:
    import pandas as pd

    from storemon_pipeline.core import sources

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

# The three sources (sources.SourceSpec names). Parsing and validation (pandas, pyarrow,
# pandera) are imported only by a run that ingests: a report run never pays for them.
POLLS, HOURS, ZONES = "store_status", "business_hours", "timezones"

STAGE_SQL = """
CREATE TABLE staged_polls (store_id VARCHAR, timestamp_utc TIMESTAMP, status VARCHAR, line_number BIGINT);
CREATE TABLE merged_polls (
    store_id VARCHAR, timestamp_utc TIMESTAMP, status VARCHAR, copies BIGINT, conflicting BOOLEAN
);
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
    rejections: Any = None  # a DataFrame: line_number, reason, raw_values
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


def stage(source_dir: Path, progress_seen: SourceProgress | None, progress: Progress = log.info) -> StagedLoad:
    from storemon_pipeline.core import sources

    conn = configure(duckdb.connect())
    conn.execute(STAGE_SQL)
    results = {}
    progress_after = None
    try:
        results[POLLS], progress_after = _stage_polls(conn, Path(source_dir), progress_seen, progress)
    except sources.SourceError as error:
        results[POLLS] = IngestResult(source=POLLS, error=str(error))
    for spec, stage_source in ((sources.BUSINESS_HOURS, _stage_hours), (sources.TIMEZONES, _stage_zones)):
        try:
            results[spec.name] = stage_source(conn, Path(source_dir))
        except sources.SourceError as error:
            results[spec.name] = IngestResult(source=spec.name, error=str(error))
    return StagedLoad(conn=conn, results=results, progress_seen=progress_seen, progress_after=progress_after)


def _stage_rejections(conn, spec: sources.SourceSpec, path: Path, rejected: pd.DataFrame) -> None:
    if rejected.empty:
        return
    frame = rejected.assign(source=spec.name, source_file=str(path))
    if "raw_values" not in frame:
        frame["raw_values"] = None
    conn.register("rejected_frame", frame)
    conn.execute(
        "INSERT INTO staged_rejections SELECT source, source_file, line_number, reason, raw_values FROM rejected_frame"
    )
    conn.unregister("rejected_frame")


# ---------------------------------------------------------------------------------------
# Polls: appended, idempotent on (store_id, timestamp_utc), incremental where possible.


def _resume_point(path: Path, header: sources.Header, seen: SourceProgress | None) -> tuple[int, int, str]:
    """Where to start reading: (byte offset, its line number, mode)."""
    from storemon_pipeline.core import sources

    if seen and not sources.is_gzip(path) and seen.path == str(path):
        if path.stat().st_size >= seen.byte_offset and sources.fingerprint(path, seen.byte_offset) == seen.fingerprint:
            return seen.byte_offset, seen.next_line, "incremental"
    return header.data_offset, 2, "full"


def _stage_polls(
    conn, source_dir: Path, seen: SourceProgress | None, progress: Progress
) -> tuple[IngestResult, SourceProgress]:
    import pandas as pd

    from storemon_pipeline.core import sources, validation
    path = sources.find_source_file(sources.STORE_STATUS, source_dir)
    header = sources.read_header(path, sources.STORE_STATUS)
    start_offset, first_line, mode = _resume_point(path, header, seen)
    result = IngestResult(source=POLLS, source_file=str(path), mode=mode)
    rejections = []
    end_offset, next_line = start_offset, first_line
    for block in sources.iter_blocks(path, header, start_offset, first_line):
        checked = validation.validate_polls(block.rows)
        rejected = pd.concat([block.malformed, checked.rejected], ignore_index=True)
        _stage_rejections(conn, sources.STORE_STATUS, path, rejected)
        conn.register("valid_block", checked.valid)
        conn.execute("INSERT INTO staged_polls SELECT store_id, timestamp_utc, status, line_number FROM valid_block")
        conn.unregister("valid_block")
        result.rows_read += len(block.rows) + len(block.malformed)
        result.rows_rejected += len(rejected)
        rejections.append(rejected)
        end_offset, next_line = block.end_offset, block.next_line
        progress(f"{path.name}: read up to line {next_line - 1:,} ({result.rows_read:,} rows, {mode})")
    if mode == "full" and result.rows_read == 0:
        raise sources.SourceError(
            f"{path}: the file has a header but no data rows; expected columns {sources.STORE_STATUS.expected_columns}"
        )
    merge_staged_polls(conn, result)
    result.rejections = pd.concat(rejections, ignore_index=True) if rejections else pd.DataFrame()
    fingerprint = "" if sources.is_gzip(path) else sources.fingerprint(path, end_offset)
    return result, SourceProgress(str(path), end_offset, next_line, fingerprint)


def merge_staged_polls(conn: duckdb.DuckDBPyConnection, result: IngestResult) -> None:
    """Collapse staged rows to one per key: ``merged_polls``.

    Two polls of a store at the same instant with different statuses count as one inactive
    poll, here and across loads: the warehouse holds one row per (store_id, timestamp_utc),
    which the report's SQL relies on.
    """
    conn.execute(
        """
        CREATE OR REPLACE TABLE merged_polls AS
        SELECT store_id, timestamp_utc,
               CASE WHEN bool_or(status = 'inactive') THEN 'inactive' ELSE 'active' END AS status,
               count(*) AS copies,
               -- (not count(DISTINCT status): that costs 4x the whole grouping on 1.8M rows)
               bool_or(status = 'inactive') AND bool_or(status = 'active') AS conflicting
        FROM staged_polls GROUP BY store_id, timestamp_utc
        ORDER BY timestamp_utc
        """
    )
    result.duplicate_rows, result.conflicting_rows = fetch_row(
        conn,
        "SELECT coalesce(sum(copies - 1) FILTER (WHERE NOT conflicting), 0), "
        "coalesce(sum(copies) FILTER (WHERE conflicting), 0) FROM merged_polls",
    )


# ---------------------------------------------------------------------------------------
# Business hours and time zones: small and may change, so each load states them whole; the
# warehouse keeps the versions (which load added and which retired each row).


def _read_whole(path: Path, spec: sources.SourceSpec, validate) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    import pandas as pd

    from storemon_pipeline.core import sources
    header = sources.read_header(path, spec)
    valid, rejected, rows_read = [], [], 0
    for block in sources.iter_blocks(path, header, header.data_offset, 2):
        checked = validate(block.rows)
        valid.append(checked.valid)
        rejected += [block.malformed, checked.rejected]
        rows_read += len(block.rows) + len(block.malformed)
    if rows_read == 0:
        raise sources.SourceError(
            f"{path}: the file has a header but no data rows; expected columns {spec.expected_columns}"
        )
    return pd.concat(valid, ignore_index=True), pd.concat(rejected, ignore_index=True), rows_read


def _stage_hours(conn, source_dir: Path) -> IngestResult:
    from storemon_pipeline.core import sources, validation
    path = sources.find_source_file(sources.BUSINESS_HOURS, source_dir)
    valid, rejected, rows_read = _read_whole(path, sources.BUSINESS_HOURS, validation.validate_business_hours)
    _stage_rejections(conn, sources.BUSINESS_HOURS, path, rejected)
    conn.register("valid_hours", valid)
    # Exact duplicates say nothing new: the hours of a day are a union.
    conn.execute(
        """
        INSERT INTO staged_hours
        SELECT DISTINCT store_id, day_of_week, CAST(start_time_local AS TIME), CAST(end_time_local AS TIME)
        FROM valid_hours ORDER BY ALL
        """
    )
    conn.unregister("valid_hours")
    total = fetch_value(conn, "SELECT count(*) FROM staged_hours")
    return IngestResult(
        source=HOURS, source_file=str(path), rows_read=rows_read, rows_rejected=len(rejected),
        duplicate_rows=len(valid) - total, total_rows=total, rejections=rejected,
    )


def _stage_zones(conn, source_dir: Path) -> IngestResult:
    import pandas as pd

    from storemon_pipeline.core import sources, validation
    path = sources.find_source_file(sources.TIMEZONES, source_dir)
    valid, rejected, rows_read = _read_whole(path, sources.TIMEZONES, validation.validate_timezones)
    # One zone per store: repeats of the same zone are harmless; a different zone for a store
    # already seen is rejected, naming the line whose zone was kept.
    valid = valid.sort_values("line_number", kind="stable")
    first = valid.drop_duplicates("store_id", keep="first").set_index("store_id")
    repeats = valid[valid.duplicated("store_id", keep="first")]
    kept_zone = first.loc[repeats["store_id"], "timezone_str"].to_numpy()
    kept_line = first.loc[repeats["store_id"], "line_number"].to_numpy()
    differs = repeats["timezone_str"].to_numpy() != kept_zone
    conflicting = repeats[differs]
    conflicts = pd.DataFrame(
        {
            "line_number": conflicting["line_number"].to_numpy(),
            "reason": [
                f"timezone_str {zone!r} conflicts with line {line} for the same store; line {line} was kept"
                for zone, line in zip(conflicting["timezone_str"], kept_line[differs])
            ],
            "raw_values": (conflicting["store_id"] + "," + conflicting["timezone_str"]).to_numpy(),
        }
    )
    rejected = pd.concat([rejected, conflicts], ignore_index=True)
    _stage_rejections(conn, sources.TIMEZONES, path, rejected)
    table = first.reset_index()[["store_id", "timezone_str"]]
    conn.register("valid_zones", table)
    conn.execute("INSERT INTO staged_zones SELECT store_id, timezone_str FROM valid_zones ORDER BY store_id")
    conn.unregister("valid_zones")
    return IngestResult(
        source=ZONES, source_file=str(path), rows_read=rows_read, rows_rejected=len(rejected),
        duplicate_rows=len(repeats) - len(conflicting), conflicting_rows=len(conflicting),
        total_rows=len(table), rejections=rejected,
    )


def ingest(warehouse, source_dir: Path, run_id: str | None = None, progress: Progress = log.info) -> LoadOutcome:
    """Stage the three files and commit them as one load; returns its id and per-source results."""
    staged = stage(source_dir, warehouse.read_progress(), progress)
    try:
        load_id = warehouse.commit_load(staged, run_id, progress)
    finally:
        staged.close()
    return LoadOutcome(load_id=load_id, results=staged.results)
