"""The report: business hours in UTC, status intervals, and the per-store report table."""

from datetime import datetime, timezone

import dagster as dg
from dagster_duckdb import DuckDBResource

from storemon_pipeline import report
from storemon_pipeline.assets import DUCKDB_POOL
from storemon_pipeline.assets.ingestion import (
    raw_business_hours,
    raw_store_polls,
    raw_store_timezones,
)
from storemon_pipeline.resources import StoremonHome
from storemon_pipeline.settings import report_path
from storemon_pipeline.warehouse import fetch_value

GROUP = "report"
PREVIEW_ROWS = 10


class ReportConfig(dg.Config):
    as_of: str | None = None
    """The report's "now" (UTC, ISO 8601). Empty: the newest ingested poll."""


@dg.asset(group_name=GROUP, kinds={"duckdb"}, pool=DUCKDB_POOL, deps=[raw_store_polls, raw_business_hours, raw_store_timezones])
def localized_business_hours(
    context: dg.AssetExecutionContext, config: ReportConfig, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Each polled store's business hours as merged UTC intervals over the range its polls cover.

    Fixes the report's as_of for the downstream assets of this run.
    """
    with duckdb.get_connection() as conn:
        as_of = report.build_localized_business_hours(conn, report.parse_as_of(config.as_of))
        rows, stores = conn.execute("SELECT count(*), count(DISTINCT store_id) FROM localized_business_hours").fetchall()[0]
    context.log.info(f"as_of {as_of}: {rows:,} business-hour intervals for {stores:,} stores")
    return dg.MaterializeResult(
        metadata={"as_of": str(as_of), "dagster/row_count": dg.MetadataValue.int(rows), "stores": dg.MetadataValue.int(stores)}
    )


@dg.asset(group_name=GROUP, kinds={"duckdb"}, pool=DUCKDB_POOL, deps=[localized_business_hours, raw_store_polls])
def status_intervals(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Business-hour intervals labelled active/inactive by the nearest in-hours poll."""
    with duckdb.get_connection() as conn:
        report.build_status_intervals(conn)
        as_of = report.current_as_of(conn)
        rows, inactive = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'inactive') FROM status_intervals"
        ).fetchall()[0]
    context.log.info(f"as_of {as_of}: {rows:,} status intervals, {inactive:,} inactive")
    return dg.MaterializeResult(
        metadata={"as_of": str(as_of), "dagster/row_count": dg.MetadataValue.int(rows), "inactive_intervals": dg.MetadataValue.int(inactive)}
    )


@dg.asset(group_name=GROUP, kinds={"duckdb", "csv"}, pool=DUCKDB_POOL, deps=[status_intervals])
def store_report(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, storemon: StoremonHome
) -> dg.MaterializeResult:
    """Per store, uptime and downtime within business hours over the last hour, day and week.

    Written to $STOREMON_HOME/reports/<run id>.csv; the run id is the report_id.
    """
    report_id = context.run.run_id
    path = report_path(storemon.paths.reports_dir, report_id)
    with duckdb.get_connection() as conn:
        report.build_store_report(conn)
        as_of = report.current_as_of(conn)
        row_count = report.write_report_csv(conn, path)
        report.record_report(conn, report_id, as_of, row_count, path)
        preview = conn.execute(
            f"SELECT {', '.join(report.REPORT_COLUMNS)} FROM store_report "
            f"ORDER BY downtime_last_week DESC, store_id LIMIT {PREVIEW_ROWS}"
        ).df()
        stores_down_now = fetch_value(conn, "SELECT count(*) FROM store_report WHERE downtime_last_hour > 0")
    context.log.info(f"report {report_id}: {row_count:,} stores as of {as_of} -> {path}")
    return dg.MaterializeResult(
        metadata={
            "report_id": report_id,
            "as_of": str(as_of),
            "dagster/row_count": dg.MetadataValue.int(row_count),
            "path": dg.MetadataValue.path(str(path)),
            "stores_down_in_last_hour": dg.MetadataValue.int(stores_down_now),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "most_downtime_last_week": dg.MetadataValue.md(preview.to_markdown(index=False)),
        }
    )



report_assets = [localized_business_hours, status_intervals, store_report]
