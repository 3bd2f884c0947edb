"""Launch a report when new polls have landed.

The sensor reads only Dagster's event log (never the DuckDB file): each ``raw_store_polls``
materialization carries ``rows_added``. All ingest runs since the last tick form one batch;
if any of them added rows, one ``report_job`` run is requested, keyed by the newest
materialization so that a batch can never yield two reports.
"""

import dagster as dg

from storemon_pipeline.assets.ingestion import raw_store_polls
from storemon_pipeline.jobs import report_job

# Materializations read per tick; a longer backlog is taken over the next ticks.
BATCH_LIMIT = 100


def rows_added(record: dg.EventLogRecord) -> int:
    materialization = record.asset_materialization
    entry = materialization.metadata.get("rows_added") if materialization else None
    return int(entry.value) if entry is not None else 0


@dg.sensor(
    job=report_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches report_job once after each batch of ingest runs that added polls.",
)
def report_on_new_polls(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    after_storage_id = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_store_polls.key, after_storage_id=after_storage_id),
        limit=BATCH_LIMIT,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new raw_store_polls materialization")
    newest = records[-1]
    added = sum(rows_added(record) for record in records)
    if added == 0:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"{len(records)} ingest run(s) added no polls"),
            cursor=str(newest.storage_id),
        )
    context.log.info(f"{len(records)} ingest run(s) added {added:,} polls; requesting a report")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"new-polls-{newest.storage_id}",
                tags={"storemon/trigger": "sensor", "storemon/ingest_run_id": newest.run_id},
            )
        ],
        cursor=str(newest.storage_id),
    )
