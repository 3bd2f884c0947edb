import dagster as dg

from storemon_pipeline.assets.ingestion import ingestion_assets, ingestion_checks
from storemon_pipeline.assets.report import report_assets
from storemon_pipeline.jobs import ingest_job, report_job
from storemon_pipeline.resources import build_resources
from storemon_pipeline.schedules import hourly_ingest_schedule
from storemon_pipeline.sensors import report_on_new_polls

defs = dg.Definitions(
    assets=[*ingestion_assets, *report_assets],
    asset_checks=[*ingestion_checks],
    jobs=[ingest_job, report_job],
    schedules=[hourly_ingest_schedule],
    sensors=[report_on_new_polls],
    resources=build_resources(),
    # A run is one step (a load, or a report from one snapshot); no process to spawn per step.
    executor=dg.in_process_executor,
)
