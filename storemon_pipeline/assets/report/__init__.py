"""The report: business hours in UTC, status intervals, and the per-store report table.

The three assets are one computation (``can_subset=False``): Dagster always materializes
them together, in one step, from one snapshot pinned at the step's start. So selecting any
of them in the UI, the CLI or GraphQL computes all three from the newest data, never from
another run's leftovers.
"""

from dataclasses import asdict

import dagster as dg
from pydantic import Field

from storemon_pipeline.assets import OWNERS
from storemon_pipeline.assets.ingestion import raw_business_hours, raw_store_polls, raw_store_timezones
from storemon_pipeline.core import report
from storemon_pipeline.resources import StoremonResource

GROUP = "report"
PREVIEW_ROWS = 10
SOURCES = [raw_store_polls.key, raw_business_hours.key, raw_store_timezones.key]
_WINDOWS = {
    "hour": "the last hour, in minutes",
    "day": "the last 24 hours, in hours",
    "week": "the last 168 hours, in hours",
}
REPORT_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("store_id", "string", description="The store's id as in the source files"),
        *(
            dg.TableColumn(
                name,
                "decimal(18,2)",
                description=f"{name.split('_')[0].capitalize()} within business hours over {_WINDOWS[name.rsplit('_', 1)[1]]}",
            )
            for name in report.REPORT_COLUMNS[1:]
        ),
    ]
)
REPORT_CHECK_DESCRIPTIONS = {
    "uptime_plus_downtime_is_business_time": "Per store and window, uptime + downtime equals the business time "
    "computed independently from localized_business_hours.",
    "one_row_per_polled_store": "Exactly one row per store with a poll at or before as_of.",
    "no_negative_values": "No uptime or downtime is negative.",
    "values_within_their_window": "Uptime + downtime is at most 60 minutes (hour), 24 hours (day), 168 hours (week).",
}


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
    metadata={"dagster/column_schema": REPORT_SCHEMA},
    # (No angle brackets: the UI renders descriptions as Markdown, where <run id> is a tag.)
    description=(
        "Per store, uptime and downtime within business hours over the last hour, day and week. "
        "Written to `reports/{run_id}.csv`; the run id is the report_id."
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
    check_specs=[
        dg.AssetCheckSpec(name, asset=store_report.key, description=description)
        for name, description in REPORT_CHECK_DESCRIPTIONS.items()
    ],
    can_subset=False,
    description="Pin a snapshot (the latest load, or `snapshot`) and compute the three report tables from it.",
)
def report_assets_op(context: dg.AssetExecutionContext, config: ReportConfig, storemon: StoremonResource):
    settings = storemon.settings
    warehouse = storemon.open_warehouse(context)
    report_id = context.run.run_id
    with report.ReportComputation(
        warehouse, report.parse_snapshot(config.snapshot), report.parse_as_of(config.as_of)
    ) as run:
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
                metadata={
                    **pinned,
                    "dagster/row_count": dg.MetadataValue.int(rows),
                    "path": dg.MetadataValue.path(str(path)),
                },
            )
        run.build("store_report")
        record = run.write_report(settings.reports_dir, report_id)
        path = settings.reports_dir / f"{report_id}.csv"
        preview = run.conn.execute(
            f"SELECT {', '.join(report.REPORT_COLUMNS)} FROM store_report "
            f"ORDER BY downtime_last_week DESC, store_id LIMIT {PREVIEW_ROWS}"
        ).fetchall()
        down_now = run.value("SELECT count(*) FROM store_report WHERE downtime_last_hour > 0")
        coverage = run.coverage()
        violations = run.check_report()
    context.log.info(f"report {report_id}: {record.row_count:,} stores as of {record.as_of} -> {path}")
    context.log.info(coverage.summary())
    for warning in coverage.warnings():
        context.log.warning(warning)
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
                records=[
                    dg.TableRecord(dict(zip(report.REPORT_COLUMNS, (row[0], *map(float, row[1:]))))) for row in preview
                ],
                schema=REPORT_SCHEMA,
            ),
            **{name: dg.MetadataValue.int(value) for name, value in asdict(coverage).items()},
            "id_warnings": "; ".join(coverage.warnings()) or "none",
        },
    )
    for name, count in violations.items():
        yield dg.AssetCheckResult(
            asset_key=store_report.key,
            check_name=name,
            passed=count == 0,
            metadata={"violations": dg.MetadataValue.int(count)},
        )


report_assets = [report_assets_op]
