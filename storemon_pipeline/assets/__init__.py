from storemon_pipeline.core.settings import settings_from_env

# Ingest runs write the warehouse. The embedded DuckDB file takes one writing process at a
# time, so ingests go one at a time through this pool (the shipped dagster.yaml sets its
# limit to 1). Report runs only read a snapshot and are in no pool: they run concurrently.
WRITER_POOL = "warehouse_writer"
OWNERS = ["team:storemon"]


def warehouse_kind() -> str:
    """The storage named on the assets ("duckdb" or "postgres"), from STOREMON_WAREHOUSE."""
    return "duckdb" if settings_from_env().embedded else "postgres"
