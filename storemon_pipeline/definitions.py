import dagster as dg

from storemon_pipeline.assets.ingestion import ingestion_assets, ingestion_checks
from storemon_pipeline.assets.report import report_assets
from storemon_pipeline.executors import code_location_executor
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
    # In process unless a run chooses multiprocess or a Dask cluster (run config `execution`):
    # the report's shard steps can run in parallel; a load is one step.
    executor=code_location_executor(),
)


def resolved_report_job() -> dg.JobDefinition:
    """report_job, for ``build_reconstructable_job`` (the CLI's runs on other processes)."""
    return defs.resolve_job_def(report_job.name)
