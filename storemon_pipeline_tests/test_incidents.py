"""store_incidents: the outages the polls show, with hard bounds that hold against the
generated truth, and business minutes that add up to the report's downtime."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from storemon_pipeline.core import ingest, report, sample
from storemon_pipeline.core.settings import Settings
from storemon_pipeline.core.warehouse import open_warehouse
from storemon_pipeline_tests.report_oracle import business_intervals

STORES = 300


@pytest.fixture(scope="module", params=sample.TRUTH_FAMILIES)
def incidents_and_truth(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"incidents-{request.param}")
    sample.generate(root / "src", stores=STORES, days=9, seed=11, truth_dir=root / "truth", truth_family=request.param)
    settings = Settings(home=root / "home", source_dir=root / "src")
    warehouse = open_warehouse(settings)
    ingest.ingest(warehouse, settings.source_dir, progress=lambda message: None)
    shard = report.compute_shard(warehouse, warehouse.pin_snapshot())
    times = [column for column in report.INCIDENT_COLUMNS if column.endswith(("_utc", "_local"))]
    incidents = shard.frame("incidents")
    for column in times:
        incidents[column] = pd.to_datetime(incidents[column], format="ISO8601")
    rows = shard.frame()
    timeline = pd.read_csv(root / "truth" / "timeline.csv", dtype={"store_id": str})
    for column in ("start_utc", "end_utc"):
        timeline[column] = pd.to_datetime(timeline[column], format="ISO8601")
    polls = pd.read_csv(root / "src" / "store_status.csv.gz", dtype={"store_id": str})
    polls["timestamp_utc"] = pd.to_datetime(polls["timestamp_utc"].str.removesuffix(" UTC"), format="ISO8601")
    return root, shard.snapshot.as_of, incidents, rows, timeline, polls


def in_hours_polls(root, polls: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """The polls inside business hours, by the report oracle's business hours (zoneinfo)."""
    hours = pd.read_csv(root / "src" / "business_hours.csv", dtype={"store_id": str})
    zones = pd.read_csv(root / "src" / "timezones.csv", dtype={"store_id": str}).set_index("store_id")["timezone_str"]
    keep = []
    for store, group in polls.groupby("store_id"):
        rows = [
            (r.dayOfWeek, time.fromisoformat(r.start_time_local), time.fromisoformat(r.end_time_local))
            for r in hours[hours["store_id"] == store].itertuples()
        ]
        business = business_intervals(
            rows, ZoneInfo(zones.get(store, "America/Chicago")), (as_of - timedelta(days=12)).date(), as_of.date()
        )
        for row in group.itertuples():
            t = row.timestamp_utc.to_pydatetime()
            if t <= as_of and any(s <= t < e for s, e in business):
                keep.append(row.Index)
    return polls.loc[keep]


def test_every_true_outage_seen_by_a_poll_lies_within_its_incidents_bounds(incidents_and_truth):
    root, as_of, incidents, _, timeline, polls = incidents_and_truth
    week_start = as_of - timedelta(hours=168)
    seen = in_hours_polls(root, polls[polls["status"] == "inactive"], as_of)
    outages = timeline[timeline["status"] == "inactive"]
    checked = 0
    for poll in seen.itertuples():
        found = list(
            incidents[
                (incidents["store_id"] == poll.store_id)
                & (incidents["first_inactive_utc"] <= poll.timestamp_utc)
                & (incidents["last_inactive_utc"] >= poll.timestamp_utc)
            ].itertuples()
        )
        if not found:
            # Only incidents whose span reaches into the week are listed.
            assert poll.timestamp_utc < week_start
            continue
        (incident,) = found
        (outage,) = outages[
            (outages["store_id"] == poll.store_id)
            & (outages["start_utc"] <= poll.timestamp_utc)
            & (outages["end_utc"] > poll.timestamp_utc)
        ].itertuples()
        lower = incident.preceding_active_utc if pd.notna(incident.preceding_active_utc) else pd.Timestamp.min
        upper = incident.following_active_utc if pd.notna(incident.following_active_utc) else pd.Timestamp.max
        assert lower < outage.start_utc and outage.end_utc <= upper
        if pd.notna(incident.max_minutes):
            assert (outage.end_utc - outage.start_utc).total_seconds() / 60 <= incident.max_minutes + 0.01
        # (min_minutes is a lower bound only if the inactive polls saw one outage: two blips
        # with no poll between them look like one long incident. Not asserted.)
        checked += 1
    assert checked >= 50


def test_a_stores_incidents_add_up_to_its_downtime_last_week(incidents_and_truth):
    _, _, incidents, rows, _, _ = incidents_and_truth
    minutes = incidents.groupby("store_id")["business_minutes"].agg(["sum", "count"])
    rows = rows.set_index("store_id").join(minutes).fillna({"sum": 0, "count": 0})
    # (A store whose polls all fall outside its hours has no evidence: all down, no incident.)
    with_incidents = rows[rows["count"] > 0]
    assert len(with_incidents) >= STORES // 2
    tolerance = 0.011 + with_incidents["count"] * 0.005 / 60
    off = (with_incidents["sum"] / 60 - with_incidents["downtime_last_week"]).abs() > tolerance
    assert not off.any(), with_incidents[off]
    no_incident_but_down = rows[(rows["count"] == 0) & (rows["downtime_last_week"] > 0)]
    assert (no_incident_but_down["uptime_last_week"] == 0).all()


def test_local_times_are_the_stores_wall_clock(incidents_and_truth):
    root, _, incidents, _, _, _ = incidents_and_truth
    zones = pd.read_csv(root / "src" / "timezones.csv", dtype={"store_id": str}).set_index("store_id")["timezone_str"]
    sample_rows = incidents.dropna(subset=["start_utc"]).head(50)
    for row in sample_rows.itertuples():
        local = row.start_utc.tz_localize("UTC").tz_convert(zones.get(row.store_id, "America/Chicago"))
        assert pd.Timestamp(row.start_local) == local.tz_localize(None)
