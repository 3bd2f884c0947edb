"""The report: business hours in UTC, status intervals, and the per-store report table.

The three assets are one computation (``can_subset=False``), a graph of three steps:
``pin_report_snapshot`` pins one snapshot and cuts its stores into ``shards`` ranges;
``compute_report_shard`` runs once per shard (a dynamic fan-out, on whichever executor the
run chose), from only its stores' slice of that snapshot; ``write_report`` puts the shards'
rows together in store order as one CSV and materializes the three assets. Selecting any of
them in the UI, the CLI or GraphQL computes all three from one snapshot, never from another
run's leftovers.
"""

import shutil
from dataclasses import asdict

import dagster as dg
from pydantic import Field

from storemon_pipeline.assets import OWNERS
from storemon_pipeline.assets.ingestion import raw_business_hours, raw_store_polls, raw_store_timezones
from storemon_pipeline.core import report
from storemon_pipeline.core.settings import is_local
from storemon_pipeline.core.warehouse import Snapshot, StoreRange
from storemon_pipeline.resources import StoremonResource

GROUP = "report"
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


def _report_file_spec(name: str, file: str, description: str) -> dg.AssetSpec:
    """An asset written as one of the CSVs beside each report (core.report.REPORT_FILES)."""
    return dg.AssetSpec(
        name,
        group_name=GROUP,
        deps=[status_intervals.key],
        kinds={"duckdb", "csv"},
        owners=OWNERS,
        tags={"storemon/output": file},
        description=f"{description} Written to `reports/{{run_id}}.{file}.csv`.",
    )


store_incidents = _report_file_spec(
    "store_incidents",
    "incidents",
    "The outages the polls show in the last week, one row per run of inactive in-hours polls: the nearest-poll "
    "start and end, hard bounds (the active polls around it), local times and the business minutes it cost "
    "(columns: core/sql/store_incidents.sql).",
)
store_daily_uptime = _report_file_spec(
    "store_daily_uptime",
    "daily",
    "Per store and local date of the last 7 days (the local date of as_of and the 6 before it): business hours, "
    "uptime and downtime, in hours. The 7 dates add up to the week's figures minus the week's first, partial "
    "local date.",
)
store_report_extended = _report_file_spec(
    "store_report_extended",
    "extended",
    "The report's rows with what the polls can and cannot tell: per window, a 90 % interval for the true "
    "uptime (learned from this snapshot's own polls: hide each poll and see how often its neighbours were "
    "wrong), the in-hours polls and the business time no poll came within 30 minutes of "
    "(docs/report.md; columns: core/sql/store_report_extended.sql).",
)
# The CSVs beside each report (core.report.REPORT_FILES), by name, and all the graph's assets.
REPORT_FILE_ASSETS = {
    spec.tags["storemon/output"]: spec for spec in (store_incidents, store_daily_uptime, store_report_extended)
}
ASSET_SPECS = (localized_business_hours, status_intervals, store_report, *REPORT_FILE_ASSETS.values())


class ReportConfig(dg.Config):
    as_of: str | None = Field(
        default=None,
        description="The report's now, UTC, e.g. `2023-03-13 06:30:00`. Empty: the newest poll of the snapshot.",
    )
    snapshot: int | None = Field(
        default=None,
        description="Recompute from exactly the polls that load had seen (a load id). Empty: the latest load.",
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Compute in this many store shards (steps that the run's executor may run in parallel, "
        "on other processes or machines). The CSV is the same for any number.",
    )


@dg.op(
    ins={key.path[-1]: dg.In(dg.Nothing) for key in SOURCES},
    out=dg.DynamicOut(tuple),
    description="Pin one snapshot and cut its polled stores into `shards` ranges.",
)
def pin_report_snapshot(context: dg.OpExecutionContext, config: ReportConfig, storemon: StoremonResource):
    warehouse = storemon.open_warehouse(context)
    snapshot = warehouse.pin_snapshot(report.parse_snapshot(config.snapshot), report.parse_as_of(config.as_of))
    shards = warehouse.shards(snapshot, config.shards)
    context.log.info(
        f"pinned snapshot: load {snapshot.load_id} of {warehouse.location}, as_of {snapshot.as_of}; "
        f"{len(shards)} shard(s)"
    )
    # Shards share one interval model (fitted on a sample of all their stores); one shard fits its own.
    model = None
    if len(shards) > 1:
        model = report.sample_interval_model(warehouse, snapshot, shards[0].polled_stores)
        context.log.info(f"interval model fitted on a sample of the snapshot's {shards[0].polled_stores:,} stores")
    for shard in shards:
        yield dg.DynamicOutput((snapshot, shard, model), mapping_key=str(shard.index))


@dg.op(description="One shard's report rows, from only its stores' slice of the pinned snapshot.")
def compute_report_shard(
    context: dg.OpExecutionContext, shard: tuple, storemon: StoremonResource
) -> report.ShardResult:
    snapshot, stores, model = shard
    assert isinstance(snapshot, Snapshot) and isinstance(stores, StoreRange)
    result = report.compute_shard(storemon.open_warehouse(context), snapshot, stores, with_tables=True, model=model)
    context.log.info(
        f"shard {stores.index + 1} of {stores.count}: {result.row_count:,} stores; loaded in "
        f"{result.load_seconds:.2f} s, computed in {result.compute_seconds:.2f} s; peak RSS {result.peak_rss_mb:,.0f} MB"
    )
    return result


# The graph's outputs: one per asset, and one per check (named as Dagster names check outputs).
WRITE_REPORT_OUTPUTS = [
    *(spec.key.path[-1] for spec in ASSET_SPECS),
    *(f"{store_report.key.path[-1]}_{check}" for check in REPORT_CHECK_DESCRIPTIONS),
]


@dg.op(
    out={name: dg.Out(dg.Nothing) for name in WRITE_REPORT_OUTPUTS},
    description="Put the shards' rows together in store order as `reports/{run_id}.csv`, atomically.",
)
def write_report(context: dg.OpExecutionContext, shards: list, storemon: StoremonResource):
    settings = storemon.settings
    report_id = context.run.run_id
    assembled = report.AssembledReport(shards)
    snapshot = assembled.snapshot
    pinned = {"as_of": str(snapshot.as_of), "load_id": dg.MetadataValue.int(snapshot.load_id)}
    for name, (path, rows) in assembled.write_tables(settings.asset_dir).items():
        context.log.info(f"{name}: {rows:,} rows -> {path}")
        yield dg.Output(
            None,
            output_name=name,
            metadata={
                **pinned,
                "dagster/row_count": dg.MetadataValue.int(rows),
                "path": dg.MetadataValue.path(str(path)),
            },
        )
    record = assembled.write(settings.reports_dir, report_id, storemon.open_warehouse().kind)
    path = report.report_path(settings.reports_dir, report_id)
    coverage = assembled.coverage
    context.log.info(f"report {report_id}: {record.row_count:,} stores as of {record.as_of} -> {path}")
    context.log.info(coverage.summary())
    for warning in coverage.warnings():
        context.log.warning(warning)
    yield dg.Output(
        None,
        output_name=store_report.key.path[-1],
        metadata={
            **pinned,
            "report_id": report_id,
            "dagster/row_count": dg.MetadataValue.int(record.row_count),
            "path": dg.MetadataValue.path(str(path)),
            "stores_down_in_last_hour": dg.MetadataValue.int(assembled.stores_down_in_last_hour),
            "created_at": record.created_at,
            "most_downtime_last_week": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(dict(zip(report.REPORT_COLUMNS, (row[0], *map(float, row[1:])))))
                    for row in assembled.preview
                ],
                schema=REPORT_SCHEMA,
            ),
            **{name: dg.MetadataValue.int(value) for name, value in asdict(coverage).items()},
            "id_warnings": "; ".join(coverage.warnings()) or "none",
            "incidents_last_week": dg.MetadataValue.int(assembled.file_row_count("incidents")),
            "wide_week_interval_share": dg.MetadataValue.float(round(assembled.wide_week_interval_share, 4)),
            "least_evidence_last_week": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        dict(zip(report.LEAST_EVIDENCE_COLUMNS, (row[0], int(row[1]), *map(float, row[2:]))))
                    )
                    for row in assembled.least_evidence
                ],
                schema=LEAST_EVIDENCE_SCHEMA,
            ),
            "shards": dg.MetadataValue.int(len(assembled.shards)),
            "shard_timings": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        {
                            "shard": shard.stores.index,
                            "stores": shard.row_count,
                            "load_seconds": round(shard.load_seconds, 3),
                            "compute_seconds": round(shard.compute_seconds, 3),
                            "peak_rss_mb": round(shard.peak_rss_mb, 1),
                        }
                    )
                    for shard in assembled.shards
                ],
                schema=SHARD_TIMINGS_SCHEMA,
            ),
        },
    )
    for name, spec in REPORT_FILE_ASSETS.items():
        yield dg.Output(
            None,
            output_name=spec.key.path[-1],
            metadata={
                **pinned,
                "dagster/row_count": dg.MetadataValue.int(assembled.file_row_count(name)),
                "path": dg.MetadataValue.path(str(report.report_file_path(settings.reports_dir, report_id, name))),
            },
        )
    remove_hand_offs(settings.step_store / report_id)
    for name, count in assembled.violations.items():
        yield dg.AssetCheckResult(
            asset_key=store_report.key,
            check_name=name,
            passed=count == 0,
            metadata={"violations": dg.MetadataValue.int(count)},
        )


def remove_hand_offs(folder) -> None:
    """The run's step outputs (the shards' rows) once the report holds them: they would
    otherwise stay for every report ever run."""
    if is_local(folder):
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.exists():
        folder.fs.rm(folder.path, recursive=True)


LEAST_EVIDENCE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("store_id", "string"),
        dg.TableColumn("polls_last_week", "int", description="In-hours polls in the week"),
        dg.TableColumn("unobserved_last_week", "float", description="Business hours more than 30 min from any poll"),
        dg.TableColumn("uptime_last_week", "float", description="The report's (nearest-poll) figure, hours"),
        dg.TableColumn("uptime_last_week_lo", "float", description="90 % interval for the true uptime: low end"),
        dg.TableColumn("uptime_last_week_hi", "float", description="... and high end"),
    ]
)
SHARD_TIMINGS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("shard", "int", description="Its index; shards are store_id ranges in order"),
        dg.TableColumn("stores", "int", description="Its stores (rows of the report)"),
        dg.TableColumn("load_seconds", "float", description="Reading its slice of the snapshot"),
        dg.TableColumn("compute_seconds", "float", description="The report SQL, checks and exports"),
        dg.TableColumn("peak_rss_mb", "float", description="Peak RSS of the process that ran it"),
    ]
)


@dg.graph(
    name="report",
    ins={key.path[-1]: dg.GraphIn() for key in SOURCES},
    out={name: dg.GraphOut() for name in WRITE_REPORT_OUTPUTS},
    config=dg.ConfigMapping(
        config_fn=lambda config: {"pin_report_snapshot": {"config": config}},
        config_schema=ReportConfig.to_config_schema(),
    ),
)
def report_graph(**sources):
    """Pin a snapshot (the latest load, or `snapshot`), compute the report in `shards` store shards, write it."""
    shards = pin_report_snapshot(**sources).map(compute_report_shard).collect()
    return dict(zip(WRITE_REPORT_OUTPUTS, write_report(shards)))


report_assets_graph = dg.AssetsDefinition.from_graph(
    report_graph,
    keys_by_input_name={key.path[-1]: key for key in SOURCES},
    keys_by_output_name={spec.key.path[-1]: spec.key for spec in ASSET_SPECS},
    # Each table is built from the one before it (the graph alone would say: all from the sources).
    internal_asset_deps={spec.key.path[-1]: {dep.asset_key for dep in spec.deps} for spec in ASSET_SPECS},
    group_name=GROUP,
    descriptions_by_output_name={spec.key.path[-1]: spec.description for spec in ASSET_SPECS},
    metadata_by_output_name={spec.key.path[-1]: dict(spec.metadata) for spec in ASSET_SPECS},
    tags_by_output_name={
        spec.key.path[-1]: {**spec.tags, **{f"dagster/kind/{kind}": "" for kind in spec.kinds}} for spec in ASSET_SPECS
    },
    owners_by_output_name={spec.key.path[-1]: list(spec.owners) for spec in ASSET_SPECS},
    check_specs=[
        dg.AssetCheckSpec(name, asset=store_report.key, description=description)
        for name, description in REPORT_CHECK_DESCRIPTIONS.items()
    ],
    can_subset=False,
)
report_assets = [report_assets_graph]
