"""The sample generator writes data that ingests cleanly and has the promised features."""

from pathlib import Path

import pandas as pd

from storemon_pipeline import sample, warehouse

REPO = Path(__file__).resolve().parent.parent


def test_generated_sample_ingests_cleanly_and_covers_the_hard_cases(tmp_path):
    counts = sample.generate(tmp_path / "src", stores=120, days=9, seed=3)
    conn = warehouse.connect(tmp_path / "db.duckdb")
    results = [f(conn, tmp_path / "src") for f in (warehouse.ingest_polls, warehouse.ingest_business_hours, warehouse.ingest_timezones)]
    assert [r.rows_rejected for r in results] == [0, 0, 0]
    assert results[0].rows_added == counts["polls"]

    def value(sql):
        return conn.execute(sql).fetchall()[0][0]

    stores_with_polls = value("SELECT count(DISTINCT store_id) FROM raw_store_polls")
    assert stores_with_polls == 120
    assert value("SELECT count(DISTINCT store_id) FROM raw_store_timezones") < stores_with_polls  # some fall back
    assert value("SELECT count(DISTINCT store_id) FROM raw_business_hours") < stores_with_polls  # some 24x7
    assert value("SELECT count(*) FROM raw_business_hours WHERE end_time_local < start_time_local") > 0  # past midnight
    assert value("SELECT count(*) FROM raw_business_hours WHERE end_time_local = '23:59:59'") > 0
    assert value("SELECT count(*) FROM (SELECT 1 FROM raw_business_hours GROUP BY store_id, day_of_week HAVING count(*) > 1)") > 0
    assert value("SELECT count(*) FROM (SELECT store_id FROM raw_business_hours GROUP BY store_id HAVING count(DISTINCT day_of_week) < 7)") > 0
    assert value("SELECT count(DISTINCT timezone_str) FILTER (WHERE timezone_str NOT LIKE 'America/%') FROM raw_store_timezones") > 0
    assert value("SELECT count(*) FROM raw_store_polls WHERE status = 'inactive'") > 0
    first, last = conn.execute("SELECT min(timestamp_utc), max(timestamp_utc) FROM raw_store_polls").fetchall()[0]
    assert first < pd.Timestamp("2023-03-12 08:00") < last  # US spring-forward inside the data


def test_committed_sample_is_small_and_reproducible(tmp_path):
    committed = REPO / "data" / "sample"
    assert sum(f.stat().st_size for f in committed.iterdir()) < 600_000
    sample.generate(tmp_path, stores=300, days=9, seed=1)
    for name in ("business_hours.csv", "timezones.csv"):
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes()
    assert pd.read_csv(tmp_path / "store_status.csv.gz", dtype=str).equals(
        pd.read_csv(committed / "store_status.csv.gz", dtype=str)
    )
