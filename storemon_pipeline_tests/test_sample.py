"""The sample generator writes data that ingests cleanly and has the promised features."""

from pathlib import Path

import pandas as pd

from storemon_pipeline.core import ingest, sample
from storemon_pipeline.core.settings import Settings
from storemon_pipeline.core.warehouse import open_warehouse
from storemon_pipeline_tests.conftest import table

REPO = Path(__file__).resolve().parent.parent


def test_generated_sample_ingests_cleanly_and_covers_the_hard_cases(tmp_path):
    counts = sample.generate(tmp_path / "src", stores=120, days=9, seed=3)
    settings = Settings(home=tmp_path / "home", source_dir=tmp_path / "src")
    outcome = ingest.ingest(open_warehouse(settings), settings.source_dir)
    assert [r.rows_rejected for r in outcome.results.values()] == [0, 0, 0]
    assert outcome.results["store_status"].rows_added == counts["polls"]

    def value(sql):
        return table(settings, sql)[0][0]

    stores_with_polls = value("SELECT count(DISTINCT store_key) FROM {wh}.raw_store_polls")
    assert stores_with_polls == 120
    assert value("SELECT count(DISTINCT store_id) FROM {wh}.raw_store_timezones") < stores_with_polls  # some fall back
    assert value("SELECT count(DISTINCT store_id) FROM {wh}.raw_business_hours") < stores_with_polls  # some 24x7
    assert (
        value("SELECT count(*) FROM {wh}.raw_business_hours WHERE end_time_local < start_time_local") > 0
    )  # past midnight
    assert value("SELECT count(*) FROM {wh}.raw_business_hours WHERE end_time_local = '23:59:59'") > 0
    assert (
        value(
            "SELECT count(*) FROM (SELECT 1 FROM {wh}.raw_business_hours GROUP BY store_id, day_of_week HAVING count(*) > 1)"
        )
        > 0
    )
    assert (
        value(
            "SELECT count(*) FROM (SELECT store_id FROM {wh}.raw_business_hours GROUP BY store_id HAVING count(DISTINCT day_of_week) < 7)"
        )
        > 0
    )
    assert (
        value(
            "SELECT count(DISTINCT timezone_str) FILTER (WHERE timezone_str NOT LIKE 'America/%') FROM {wh}.raw_store_timezones"
        )
        > 0
    )
    assert value("SELECT count(*) FROM {wh}.raw_store_polls WHERE status = 'inactive'") > 0
    first, last = table(settings, "SELECT min(timestamp_utc), max(timestamp_utc) FROM {wh}.raw_store_polls")[0]
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
