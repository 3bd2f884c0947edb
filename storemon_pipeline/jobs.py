import dagster as dg

from storemon_pipeline.assets.ingestion import GROUP as INGESTION_GROUP
from storemon_pipeline.assets.report import GROUP as REPORT_GROUP
from storemon_pipeline.settings import REPORT_JOB_NAME

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups(INGESTION_GROUP),
    description="Ingest the three source files into DuckDB (polls incrementally).",
)

report_job = dg.define_asset_job(
    name=REPORT_JOB_NAME,
    selection=dg.AssetSelection.groups(REPORT_GROUP),
    description=(
        "Compute the report from every poll ingested so far: business hours in UTC, status "
        "intervals, and the per-store table written to reports/<run id>.csv. The run id is the "
        "report_id. Optional run config: ops.localized_business_hours.config.as_of (UTC)."
    ),
)
