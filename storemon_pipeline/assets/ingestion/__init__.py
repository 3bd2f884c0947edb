"""Raw sources in DuckDB: polls appended incrementally, hours and zones refreshed whole."""


import os
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from storemon_pipeline import sources, warehouse
from storemon_pipeline.assets import DUCKDB_POOL
from storemon_pipeline.resources import StoremonHome

GROUP = "ingestion"
REJECTION_PREVIEW_ROWS = 20


def _materialize_result(
    context: dg.AssetExecutionContext, result: warehouse.IngestResult, **extra: Any
) -> dg.MaterializeResult:
    context.log.info(result.summary())
    metadata: dict[str, Any] = {
        "source_file": result.source_file,
        "read_mode": result.mode,
        "rows_read": dg.MetadataValue.int(result.rows_read),
        "rows_added": dg.MetadataValue.int(result.rows_added),
        "rows_rejected": dg.MetadataValue.int(result.rows_rejected),
        "duplicate_rows": dg.MetadataValue.int(result.duplicate_rows),
        "conflicting_duplicate_rows": dg.MetadataValue.int(result.conflicting_rows),
        "dagster/row_count": dg.MetadataValue.int(result.total_rows),
        **extra,
    }
    if result.rows_rejected:
        preview = result.rejections.sort_values("line_number").head(REJECTION_PREVIEW_ROWS)
        lines = "\n".join(f"  line {row.line_number}: {row.reason}" for row in preview.itertuples())
        context.log.warning(
            f"{result.source_file}: rejected {result.rows_rejected:,} row(s), kept the rest "
            f"(all are in the rejected_rows table); first ones:\n{lines}"
        )
        metadata["rejected_preview"] = dg.MetadataValue.md(preview[["line_number", "reason"]].to_markdown(index=False))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name=GROUP, kinds={"duckdb"}, pool=DUCKDB_POOL)
def raw_store_polls(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, storemon: StoremonHome
) -> dg.MaterializeResult:
    """Store polls (store_id, timestamp_utc, status), appended from the status file.

    Idempotent on (store_id, timestamp_utc); an uncompressed file that only grew is read from
    where the last run stopped. Rows that fail validation go to ``rejected_rows``.
    """
    with duckdb.get_connection() as conn:
        result = warehouse.ingest_polls(
            conn, storemon.paths.source_dir, run_id=context.run.run_id, progress=context.log.info
        )
        newest = warehouse.fetch_value(conn, "SELECT max(timestamp_utc) FROM raw_store_polls")
    return _materialize_result(context, result, newest_poll=str(newest))


@dg.asset(group_name=GROUP, kinds={"duckdb"}, pool=DUCKDB_POOL)
def raw_business_hours(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, storemon: StoremonHome
) -> dg.MaterializeResult:
    """Business hours in local time per weekday (0 = Monday), refreshed whole in one transaction."""
    with duckdb.get_connection() as conn:
        result = warehouse.ingest_business_hours(conn, storemon.paths.source_dir, run_id=context.run.run_id)
    return _materialize_result(context, result)


@dg.asset(group_name=GROUP, kinds={"duckdb"}, pool=DUCKDB_POOL)
def raw_store_timezones(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, storemon: StoremonHome
) -> dg.MaterializeResult:
    """Each store's IANA time zone, refreshed whole in one transaction (one zone per store)."""
    with duckdb.get_connection() as conn:
        result = warehouse.ingest_timezones(conn, storemon.paths.source_dir, run_id=context.run.run_id)
    return _materialize_result(context, result)


# ---------------------------------------------------------------------------------------
# Checks: the invariants users rely on.


@dg.asset_check(asset=raw_store_polls, pool=DUCKDB_POOL, blocking=True)
def no_duplicate_poll_keys(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """At most one poll per (store_id, timestamp_utc)."""
    with duckdb.get_connection() as conn:
        duplicates = warehouse.fetch_value(
            conn,
            "SELECT count(*) FROM (SELECT 1 FROM raw_store_polls GROUP BY store_id, timestamp_utc HAVING count(*) > 1)",
        )
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_keys": duplicates})


@dg.asset_check(asset=raw_store_polls, pool=DUCKDB_POOL)
def no_empty_store_ids(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """Every poll names a store."""
    with duckdb.get_connection() as conn:
        empty = warehouse.fetch_value(
            conn, "SELECT count(*) FROM raw_store_polls WHERE store_id IS NULL OR store_id = ''"
        )
    return dg.AssetCheckResult(passed=empty == 0, metadata={"polls_without_store": empty})


@dg.asset_check(asset=raw_store_polls, pool=DUCKDB_POOL)
def newest_poll_is_recent(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """Warns when the newest poll is older than STOREMON_MAX_POLL_AGE_HOURS (default 2) hours."""
    max_age_hours = float(os.environ.get("STOREMON_MAX_POLL_AGE_HOURS", "2"))
    with duckdb.get_connection() as conn:
        newest = warehouse.fetch_value(conn, "SELECT max(timestamp_utc) FROM raw_store_polls")
    if newest is None:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"newest_poll": "none"})
    age_hours = (datetime.now(timezone.utc).replace(tzinfo=None) - newest).total_seconds() / 3600
    return dg.AssetCheckResult(
        passed=age_hours <= max_age_hours,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "newest_poll": str(newest),
            "age_hours": dg.MetadataValue.float(round(age_hours, 2)),
            "max_age_hours": dg.MetadataValue.float(max_age_hours),
        },
    )


def _rejected_rows_check(asset: dg.AssetsDefinition, spec: sources.SourceSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="no_rejected_rows",
        pool=DUCKDB_POOL,
        description=f"Warns when this run rejected rows of the {spec.name} file (see the rejected_rows table).",
    )
    def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as conn:
            rejected = conn.execute(
                "SELECT line_number, reason FROM rejected_rows WHERE source = ? AND run_id = ? ORDER BY line_number",
                [spec.name, context.run.run_id],
            ).df()
        return dg.AssetCheckResult(
            passed=rejected.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rejected_rows": dg.MetadataValue.int(len(rejected)),
                "first_rejections": dg.MetadataValue.text(
                    "\n".join(f"line {r.line_number}: {r.reason}" for r in rejected.head(10).itertuples())
                ),
            },
        )

    return _check


ingestion_assets = [raw_store_polls, raw_business_hours, raw_store_timezones]
ingestion_checks = [
    no_duplicate_poll_keys,
    no_empty_store_ids,
    newest_poll_is_recent,
    _rejected_rows_check(raw_store_polls, sources.STORE_STATUS),
    _rejected_rows_check(raw_business_hours, sources.BUSINESS_HOURS),
    _rejected_rows_check(raw_store_timezones, sources.TIMEZONES),
]
