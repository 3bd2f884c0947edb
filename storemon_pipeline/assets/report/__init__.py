"""The report: business hours in UTC, status intervals, and the per-store report table.

The three assets are one computation (``can_subset=False``): Dagster always materializes
them together, in one step, from one snapshot pinned at the step's start. So selecting any
of them in the UI, the CLI or GraphQL computes all three from the newest data, never from
another run's leftovers.
"""

from pydantic import Field

import dagster as dg

from storemon_pipeline.assets import OWNERS
from storemon_pipeline.assets.ingestion import raw_business_hours, raw_store_polls, raw_store_timezones
from storemon_pipeline.core import report
from storemon_pipeline.resources import StoremonResource

GROUP = "report"
PREVIEW_ROWS = 10
SOURCES = [raw_store_polls.key, raw_business_hours.key, raw_store_timezones.key]
PREVIEW_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("store_id", "string"),
        *(dg.TableColumn(name, "float", description="minutes" if name.endswith("hour") else "hours")
          for name in report.REPORT_COLUMNS[1:]),
    ]
)

def _intermediate_spec(name: str, deps: list[dg.AssetKey], description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        name,
        group_name=GROUP,
        deps=deps,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        description=f"{description} The latest materialization is a Parquet file named in its metadata.",
    )


localized_business_hours = _intermediate_spec(
    "localized_business_hours",
    SOURCES,
    "Each polled store's business hours as merged UTC intervals around the report's week.",
)
status_intervals = _intermediate_spec(
    "status_intervals",
    [localized_business_hours.key],
    "Business-hour intervals labelled active/inactive by the nearest in-hours poll.",
)
store_report = dg.AssetSpec(
    "store_report",
    group_name=GROUP,
    deps=[status_intervals.key],
    kinds={"duckdb", "csv"},
    owners=OWNERS,
    tags={"storemon/output": "report"},
    description=(
        "Per store, uptime and downtime within business hours over the last hour, day and week. "
        "Written to `reports/<run id>.csv`; the run id is the report_id."
    ),
)


class ReportConfig(dg.Config):
    as_of: str | None = Field(
        default=None,
        description="The report's now, UTC, e.g. `2023-03-13 06:30:00`. Empty: the newest poll of the snapshot.",
    )
    snapshot: int | None = Field(
        default=None,
        description="Recompute from exactly the polls that load had seen (a load id). Empty: the latest load.",
    )


@dg.multi_asset(
    name="report",
    specs=[localized_business_hours, status_intervals, store_report],
    can_subset=False,
    description="Pin a snapshot (the latest load, or `snapshot`) and compute the three report tables from it.",
)
def report_assets_op(context: dg.AssetExecutionContext, config: ReportConfig, storemon: StoremonResource):
    settings = storemon.settings
    warehouse = storemon.open_warehouse(context)
    report_id = context.run.run_id
    with report.ReportComputation(warehouse, report.parse_snapshot(config.snapshot), report.parse_as_of(config.as_of)) as run:
        snapshot = run.snapshot
        pinned = {"as_of": str(snapshot.as_of), "load_id": dg.MetadataValue.int(snapshot.load_id)}
        context.log.info(f"pinned snapshot: load {snapshot.load_id} of {warehouse.location}, as_of {snapshot.as_of}")
        for spec in (localized_business_hours, status_intervals):
            name = spec.key.path[-1]
            run.build(name)
            path = settings.asset_dir / f"{name}.parquet"
            run.export(name, path)
            rows = run.value(f"SELECT count(*) FROM {name}")
            context.log.info(f"{name}: {rows:,} rows -> {path}")
            yield dg.MaterializeResult(
                asset_key=spec.key,
                metadata={**pinned, "dagster/row_count": dg.MetadataValue.int(rows), "path": dg.MetadataValue.path(str(path))},
            )
        run.build("store_report")
        record = run.write_report(settings.reports_dir, report_id)
        path = settings.reports_dir / f"{report_id}.csv"
        preview = run.conn.execute(
            f"SELECT {', '.join(report.REPORT_COLUMNS)} FROM store_report "
            f"ORDER BY downtime_last_week DESC, store_id LIMIT {PREVIEW_ROWS}"
        ).fetchall()
        down_now = run.value("SELECT count(*) FROM store_report WHERE downtime_last_hour > 0")
    context.log.info(f"report {report_id}: {record.row_count:,} stores as of {record.as_of} -> {path}")
    yield dg.MaterializeResult(
        asset_key=store_report.key,
        metadata={
            **pinned,
            "report_id": report_id,
            "dagster/row_count": dg.MetadataValue.int(record.row_count),
            "path": dg.MetadataValue.path(str(path)),
            "stores_down_in_last_hour": dg.MetadataValue.int(down_now),
            "created_at": record.created_at,
            "most_downtime_last_week": dg.MetadataValue.table(
                records=[dg.TableRecord(dict(zip(report.REPORT_COLUMNS, (row[0], *map(float, row[1:]))))) for row in preview],
                schema=PREVIEW_SCHEMA,
            ),
        },
    )


report_assets = [report_assets_op]
