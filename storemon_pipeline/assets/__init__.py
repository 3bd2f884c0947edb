# Every asset or check that opens the DuckDB file runs in this pool. The shipped dagster.yaml
# limits it to one run at a time, because DuckDB allows one writing process per file.
DUCKDB_POOL = "duckdb"
