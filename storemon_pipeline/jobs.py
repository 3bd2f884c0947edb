import dagster as dg

from storemon_pipeline.assets.ingestion import GROUP as INGESTION_GROUP
from storemon_pipeline.assets.report import GROUP as REPORT_GROUP
from storemon_pipeline.core.settings import INGEST_JOB_NAME, REPORT_JOB_NAME
from storemon_pipeline.run_coordinator import IMMEDIATE_LAUNCH_TAGS

ingest_job = dg.define_asset_job(
    name=INGEST_JOB_NAME,
    selection=dg.AssetSelection.groups(INGESTION_GROUP),
    description="Ingest the three source files as one load (one transaction; polls incrementally).",
)

report_job = dg.define_asset_job(
    name=REPORT_JOB_NAME,
    selection=dg.AssetSelection.groups(REPORT_GROUP),
    description=(
        "Compute the report from one pinned snapshot of the warehouse (the latest load, or "
        "`snapshot`): business hours in UTC, status intervals, and the per-store table written to "
        "`reports/{run_id}.csv`. The run id is the report_id. Optional run config under "
        "`ops.report.config`: `as_of` (UTC), `snapshot` (a load id) and `shards` (store shards, "
        "computed in parallel by the executor chosen under `execution.config`: in_process, "
        "multiprocess or dask)."
    ),
    # Started at once when there is room, not at the daemon's next look at the queue.
    tags=IMMEDIATE_LAUNCH_TAGS,
)
