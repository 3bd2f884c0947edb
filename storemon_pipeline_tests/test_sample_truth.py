"""The generator's true timelines (--truth): polls sampled from them, the true report computed
from them, and the two families as the calibration tests need them. Checked in plain Python
(bisect, zoneinfo through the report oracle), not with the generator's SQL."""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from datetime import datetime, time, timedelta
from pathlib import Path
from statistics import median, pstdev
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from storemon_pipeline.core import sample
from storemon_pipeline_tests.report_oracle import WINDOWS, business_intervals, measure

STORES = 300


@pytest.fixture(scope="module", params=sample.TRUTH_FAMILIES)
def generated(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"truth-{request.param}")
    sample.generate(root / "src", stores=STORES, days=9, seed=5, truth_dir=root / "truth", truth_family=request.param)
    timeline = pd.read_csv(root / "truth" / "timeline.csv", dtype={"store_id": str})
    for column in ("start_utc", "end_utc"):
        timeline[column] = pd.to_datetime(timeline[column], format="ISO8601")
    polls = pd.read_csv(root / "src" / "store_status.csv.gz", dtype={"store_id": str})
    polls["timestamp_utc"] = pd.to_datetime(polls["timestamp_utc"].str.removesuffix(" UTC"), format="ISO8601")
    truth = pd.read_csv(root / "truth" / "report.csv", dtype={"store_id": str}).set_index("store_id")
    return request.param, root, timeline, polls, truth


def spans(timeline: pd.DataFrame) -> dict[str, list[tuple[datetime, datetime, str]]]:
    by_store = defaultdict(list)
    for row in timeline.itertuples(index=False):
        by_store[row.store_id].append((row.start_utc.to_pydatetime(), row.end_utc.to_pydatetime(), row.status))
    return by_store


def test_each_timeline_is_contiguous_alternating_and_covers_the_polls(generated):
    _, _, timeline, polls, _ = generated
    by_store = spans(timeline)
    assert len(by_store) == STORES
    for store_spans in by_store.values():
        for (s1, e1, status1), (s2, _, status2) in zip(store_spans, store_spans[1:]):
            assert s1 < e1 == s2 and status1 != status2
    first, last = polls["timestamp_utc"].min(), polls["timestamp_utc"].max()
    assert all(spans_[0][0] <= first and spans_[-1][1] > last for spans_ in by_store.values())


def test_every_poll_reports_the_true_status_at_its_instant(generated):
    _, _, timeline, polls, _ = generated
    by_store = spans(timeline)
    starts = {store: [s for s, _, _ in store_spans] for store, store_spans in by_store.items()}
    for row in polls.itertuples(index=False):
        at = row.timestamp_utc.to_pydatetime()
        i = bisect.bisect_right(starts[row.store_id], at) - 1
        assert by_store[row.store_id][i][2] == row.status


def test_the_true_report_is_the_true_status_within_business_hours(generated):
    """Against the report oracle's business hours (zoneinfo, per local date), on 40 stores."""
    _, root, timeline, polls, truth = generated
    hours = pd.read_csv(root / "src" / "business_hours.csv", dtype={"store_id": str})
    zones = pd.read_csv(root / "src" / "timezones.csv", dtype={"store_id": str}).set_index("store_id")["timezone_str"]
    as_of = polls["timestamp_utc"].max().to_pydatetime()
    by_store = spans(timeline)
    for store in random.Random(1).sample(sorted(by_store), 40):
        rows = [
            (r.dayOfWeek, time.fromisoformat(r.start_time_local), time.fromisoformat(r.end_time_local))
            for r in hours[hours["store_id"] == store].itertuples()
        ]
        zone = ZoneInfo(zones.get(store, "America/Chicago"))
        business = business_intervals(rows, zone, (as_of - timedelta(days=10)).date(), as_of.date() + timedelta(days=2))
        for window, length in WINDOWS.items():
            unit = 60 if window == "hour" else 3600
            up = sum(
                measure(business, max(s, as_of - length), min(e, as_of))
                for s, e, status in by_store[store]
                if status == "active"
            )
            down = measure(business, as_of - length, as_of) - up
            assert truth.loc[store, f"uptime_last_{window}"] == pytest.approx(up / unit, abs=1e-6)
            assert truth.loc[store, f"downtime_last_{window}"] == pytest.approx(down / unit, abs=1e-6)


def test_the_families_are_what_the_calibration_tests_need(generated):
    family, root, timeline, _, _ = generated
    outages = timeline[timeline["status"] == "inactive"].copy()
    # (Spans cut by the timeline's ends are not whole outages.)
    outages = outages[
        (outages["start_utc"] > timeline["start_utc"].min()) & (outages["end_utc"] < timeline["end_utc"].max())
    ]
    minutes = ((outages["end_utc"] - outages["start_utc"]).dt.total_seconds() / 60).tolist()
    zones = pd.read_csv(root / "src" / "timezones.csv", dtype={"store_id": str}).set_index("store_id")["timezone_str"]
    local = [
        row.start_utc.tz_localize("UTC").tz_convert(zones.get(row.store_id, "America/Chicago"))
        for row in outages.itertuples()
    ]
    nightly = {row.store_id for row, at in zip(outages.itertuples(), local) if (at.hour, at.minute) == (2, 0)}
    if family == "blips":
        assert median(minutes) < 20  # most outages are blips shorter than the hourly poll gap
        assert sum(m >= 60 for m in minutes) >= STORES // 10  # and a few last hours
        assert 0.15 * STORES <= len(nightly) <= 0.35 * STORES  # a quarter: nightly maintenance at 02:00
        busy = sum(at.hour in (11, 12, 13, 17, 18, 19, 20) for at in local if at.minute or at.hour != 2)
        rest = len(local) - busy
        assert busy / 7 > 1.5 * rest / 17  # busy hours see outages start more often, per hour
    else:
        # Exponential spans: their spread about equals their mean (coefficient of variation ~1).
        per_store = defaultdict(list)
        for row, length in zip(outages.itertuples(), minutes):
            per_store[row.store_id].append(length)
        ratios = [pstdev(v) / (sum(v) / len(v)) for v in per_store.values() if len(v) >= 8]
        assert ratios and 0.7 <= median(ratios) <= 1.3
        assert len(nightly) <= 0.02 * STORES  # no maintenance schedule


def test_a_truth_needs_generated_stores_and_a_known_family(tmp_path):
    with pytest.raises(ValueError, match="family"):
        sample.generate(tmp_path, stores=3, truth_dir=tmp_path / "t", truth_family="poisson")
    assert Path(sample.__file__).exists()
