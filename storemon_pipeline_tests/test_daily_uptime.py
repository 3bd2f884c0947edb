"""store_daily_uptime: per store and local date of the last 7 days, against the plain-Python
oracle (zoneinfo local midnights, nearest poll per instant), and the rule that the 7 dates add
up to the week minus its first, partial local date (docs/report.md)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from storemon_pipeline.core import ingest, report
from storemon_pipeline.core.settings import Settings
from storemon_pipeline.core.warehouse import open_warehouse
from storemon_pipeline_tests.report_oracle import business_intervals, measure, nearest_poll_up_seconds, to_utc

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("daily") / "home", source_dir=SAMPLE)
    warehouse = open_warehouse(settings)
    ingest.ingest(warehouse, SAMPLE, progress=lambda message: None)
    shard = report.compute_shard(warehouse, warehouse.pin_snapshot())
    daily, week = shard.frame("daily"), shard.frame()
    return shard.snapshot.as_of, daily, week.set_index("store_id")


def store_inputs(store: str, as_of: datetime):
    polls = pd.read_csv(SAMPLE / "store_status.csv.gz", dtype={"store_id": str})
    polls = polls[polls["store_id"] == store]
    hours = pd.read_csv(SAMPLE / "business_hours.csv", dtype={"store_id": str})
    zones = pd.read_csv(SAMPLE / "timezones.csv", dtype={"store_id": str}).set_index("store_id")["timezone_str"]
    zone = ZoneInfo(zones.get(store, "America/Chicago"))
    rows = [
        (r.dayOfWeek, time.fromisoformat(r.start_time_local), time.fromisoformat(r.end_time_local))
        for r in hours[hours["store_id"] == store].itertuples()
    ]
    intervals = business_intervals(rows, zone, (as_of - timedelta(days=12)).date(), as_of.date() + timedelta(days=2))
    statuses: dict[datetime, str] = defaultdict(str)
    for row in polls.itertuples():
        t = datetime.fromisoformat(row.timestamp_utc.removesuffix(" UTC"))
        if t <= as_of and any(s <= t < e for s, e in intervals):
            statuses[t] = "inactive" if statuses[t] == "inactive" else row.status
    return zone, intervals, sorted(statuses.items())


def test_each_local_date_matches_the_oracle_and_the_dates_add_up_to_the_week(computed):
    as_of, daily, week = computed
    assert len(daily) == 7 * len(week)
    for store in random.Random(4).sample(sorted(week.index), 40):
        zone, intervals, evidence = store_inputs(store, as_of)
        rows = daily[daily["store_id"] == store].reset_index(drop=True)
        today = as_of.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).date()
        assert [pd.Timestamp(d).date() for d in rows["local_date"]] == [today - timedelta(days=6 - i) for i in range(7)]
        for row in rows.itertuples():
            day = pd.Timestamp(row.local_date).date()
            lo = to_utc(datetime.combine(day, time()), zone)
            hi = min(to_utc(datetime.combine(day + timedelta(days=1), time()), zone), as_of)
            business = measure(intervals, lo, hi) / 3600
            up = nearest_poll_up_seconds(evidence, intervals, lo, hi) / 3600
            assert row.business_hours == pytest.approx(business, abs=0.006)
            assert row.uptime == pytest.approx(up, abs=0.006)
            assert row.downtime == pytest.approx(row.business_hours - row.uptime, abs=1e-9)
        # The rule: the week = the 7 dates + the week's part before local midnight of the first.
        first_midnight = to_utc(datetime.combine(today - timedelta(days=6), time()), zone)
        before = nearest_poll_up_seconds(evidence, intervals, as_of - timedelta(hours=168), first_midnight) / 3600
        assert rows["uptime"].sum() + before == pytest.approx(week.loc[store, "uptime_last_week"], abs=0.03)
