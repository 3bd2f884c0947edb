import dagster as dg

from storemon_pipeline.jobs import ingest_job

hourly_ingest_schedule = dg.ScheduleDefinition(
    name="hourly_ingest",
    job=ingest_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="New polls arrive every hour; ingest them on the hour.",
)
