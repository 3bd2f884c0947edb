"""Raw sources in the warehouse: one load per run, the three files in one transaction."""

from datetime import datetime, timezone
from typing import Any

import dagster as dg

from storemon_pipeline.assets import OWNERS, WRITER_POOL, warehouse_kind
from storemon_pipeline.core import ingest
from storemon_pipeline.core.warehouse import NothingIngested
from storemon_pipeline.resources import StoremonResource

GROUP = "ingestion"


def _source_spec(name: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(name, group_name=GROUP, kinds={warehouse_kind()}, owners=OWNERS, description=description)


raw_store_polls = _source_spec(
    "raw_store_polls",
    "Store polls (store_key, timestamp_utc, status), appended from the status file; store_keys gives "
    "each store id its integer key. Idempotent on (store_id, timestamp_utc); each row carries the id "
    "of the load that added it. An uncompressed file that only grew is read from where the last load stopped.",
)
raw_business_hours = _source_spec(
    "raw_business_hours", "Business hours in local time per weekday (0 = Monday), versioned by load."
)
raw_store_timezones = _source_spec(
    "raw_store_timezones", "Each store's IANA time zone (one per store), versioned by load."
)
SOURCE_ASSETS = {
    ingest.POLLS: raw_store_polls,
    ingest.HOURS: raw_business_hours,
    ingest.ZONES: raw_store_timezones,
}


def _metadata(context: dg.AssetExecutionContext, load_id: int, result: ingest.IngestResult) -> dict[str, Any]:
    context.log.info(result.summary())
    metadata: dict[str, Any] = {
        "load_id": dg.MetadataValue.int(load_id),
        "source_file": result.source_file,
        "read_mode": result.mode,
        "rows_read": dg.MetadataValue.int(result.rows_read),
        "rows_added": dg.MetadataValue.int(result.rows_added),
        "rows_retired": dg.MetadataValue.int(result.rows_retired),
        "rows_rejected": dg.MetadataValue.int(result.rows_rejected),
        "duplicate_rows": dg.MetadataValue.int(result.duplicate_rows),
        "conflicting_duplicate_rows": dg.MetadataValue.int(result.conflicting_rows),
        "dagster/row_count": dg.MetadataValue.int(result.total_rows),
    }
    for warning in result.warnings:
        context.log.warning(f"{result.source_file}: {warning}")
    if result.warnings:
        metadata["warnings"] = dg.MetadataValue.text("\n".join(result.warnings))
    if result.rows_rejected:
        lines = "\n".join(f"  line {line}: {reason}" for line, reason in result.first_rejections)
        context.log.warning(
            f"{result.source_file}: rejected {result.rows_rejected:,} row(s), kept the rest "
            f"(all are in the rejected_rows table); first ones:\n{lines}"
        )
        metadata["rejected_preview"] = dg.MetadataValue.table(
            records=[
                dg.TableRecord({"line_number": line, "reason": reason}) for line, reason in result.first_rejections
            ],
            schema=dg.TableSchema(columns=[dg.TableColumn("line_number", "int"), dg.TableColumn("reason", "string")]),
        )
    return metadata


@dg.multi_asset(
    name="ingest_sources",
    specs=[raw_store_polls, raw_business_hours, raw_store_timezones],
    can_subset=False,
    pool=WRITER_POOL,
    description="One load: the three source files, validated and committed in one transaction.",
)
def ingest_sources(context: dg.AssetExecutionContext, storemon: StoremonResource):
    warehouse = storemon.open_warehouse(context)
    settings = storemon.settings
    outcome = ingest.ingest(
        warehouse, settings.source_dir, run_id=context.run.run_id, progress=context.log.info, files=settings.files
    )
    context.log.info(f"committed load {outcome.load_id} to {warehouse.location}")
    for source, spec in SOURCE_ASSETS.items():
        result = outcome.results[source]
        if result.error is None:
            yield dg.MaterializeResult(asset_key=spec.key, metadata=_metadata(context, outcome.load_id, result))
    if outcome.errors:
        # The other sources are committed; this one kept its previous data.
        raise dg.Failure(description="; ".join(outcome.errors))


# ---------------------------------------------------------------------------------------
# Checks: the invariants users rely on.


@dg.asset_check(asset=raw_store_polls.key, blocking=True)
def no_duplicate_poll_keys(storemon: StoremonResource) -> dg.AssetCheckResult:
    """At most one poll per (store_id, timestamp_utc), among the keys the latest load touched."""
    warehouse = storemon.open_warehouse()
    latest = warehouse.latest_load() or 0
    duplicates = warehouse.duplicate_poll_keys(since_load=latest - 1)
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_keys": duplicates, "load_id": latest})


@dg.asset_check(asset=raw_store_polls.key)
def newest_poll_is_recent(storemon: StoremonResource) -> dg.AssetCheckResult:
    """Warns when the newest poll is older than STOREMON_MAX_POLL_AGE_HOURS (default 2) hours."""
    max_age_hours = storemon.settings.max_poll_age_hours
    try:
        newest = storemon.open_warehouse().newest_poll()
    except NothingIngested:
        newest = None
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


def _rejected_rows_check(spec: dg.AssetSpec, source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=spec.key,
        name="no_rejected_rows",
        description=f"Warns when this run rejected rows of the {source} file (see the rejected_rows table).",
    )
    def _check(context: dg.AssetCheckExecutionContext, storemon: StoremonResource) -> dg.AssetCheckResult:
        where = f"WHERE source = '{source}' AND run_id = '{context.run.run_id}'"
        warehouse = storemon.open_warehouse()
        count = warehouse.query(f"SELECT count(*) FROM {{wh}}.rejected_rows {where}")[0][0]
        first = warehouse.query(
            f"SELECT line_number, reason FROM {{wh}}.rejected_rows {where} ORDER BY line_number LIMIT 10"
        )
        return dg.AssetCheckResult(
            passed=count == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rejected_rows": dg.MetadataValue.int(count),
                "first_rejections": dg.MetadataValue.text(
                    "\n".join(f"line {line}: {reason}" for line, reason in first)
                ),
            },
        )

    return _check


ingestion_assets = [ingest_sources]
ingestion_checks = [
    no_duplicate_poll_keys,
    newest_poll_is_recent,
    *(_rejected_rows_check(spec, source) for source, spec in SOURCE_ASSETS.items()),
]
