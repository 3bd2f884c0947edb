import dagster as dg

from storemon_pipeline.assets.ingestion import GROUP as INGESTION_GROUP

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups(INGESTION_GROUP),
    description="Ingest the three source files into DuckDB (polls incrementally).",
)
