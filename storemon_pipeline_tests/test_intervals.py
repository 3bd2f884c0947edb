"""The extended report (sql/store_report_extended.sql): its evidence columns against the
plain-Python oracle on random stores, the intervals' promises on every row, and calibration
against generated truth on 2,000 stores of each truth family (core/calibration.py)."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from storemon_pipeline.core import calibration, report, sample
from storemon_pipeline_tests.report_oracle import oracle_evidence
from storemon_pipeline_tests.test_report import RANDOM_CASE, as_of_before_newest, load, parsed_hours, random_stores

CALIBRATION_STORES = 2000


def compute_extended(polls, hours, zones, as_of) -> pd.DataFrame:
    with duckdb.connect() as conn:
        load(conn, polls, hours, zones)
        report.build_report_tables(conn, as_of)
        return conn.execute(report.REPORT_FILES["extended"].query).df().set_index("store_id")


def assert_intervals_hold_the_point(row) -> None:
    for window in report.WINDOWS:
        point, lo, hi = (float(row[f"uptime_last_{window}{end}"]) for end in ("", "_lo", "_hi"))
        business = point + float(row[f"downtime_last_{window}"])
        assert 0 <= lo <= point <= hi <= business + 0.0101, (window, lo, point, hi, business)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**RANDOM_CASE)
def test_evidence_matches_the_oracle_and_every_interval_holds_the_point(stores, around, as_of_shift):
    polls, hours, zones = random_stores(stores, around)
    as_of = as_of_before_newest(polls, as_of_shift) or max(t for _, t, _ in polls)
    expected = oracle_evidence(polls, parsed_hours(hours), zones, as_of)
    got = compute_extended(polls, hours, zones, as_of)
    assert set(got.index) == set(expected)
    for store_id, want in expected.items():
        row = got.loc[store_id]
        for window in report.WINDOWS:
            assert row[f"polls_last_{window}"] == want[f"polls_{window}"], (store_id, window)
            assert abs(float(row[f"unobserved_last_{window}"]) - want[f"unobserved_{window}"]) <= 0.0101, (
                store_id,
                window,
                row[f"unobserved_last_{window}"],
                want[f"unobserved_{window}"],
            )
        assert_intervals_hold_the_point(row)
        if want["evidence"] == 0:  # nothing is known: the interval is the whole business time
            for window in report.WINDOWS:
                business = float(row[f"uptime_last_{window}"]) + float(row[f"downtime_last_{window}"])
                assert float(row[f"uptime_last_{window}_lo"]) == 0
                assert float(row[f"uptime_last_{window}_hi"]) == pytest.approx(business, abs=0.0101)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**RANDOM_CASE)
def test_each_gap_between_polls_is_one_row_of_the_model_with_its_business_time_per_window(stores, around, as_of_shift):
    """interval_segment_model adds up a gap's pieces (or takes a gap's only piece as it is):
    each gap with business time in the week is one row, whose business seconds per window are
    its overlap with the store's business intervals, counted here in Python."""
    polls, hours, zones = random_stores(stores, around)
    as_of = as_of_before_newest(polls, as_of_shift) or max(t for _, t, _ in polls)
    with duckdb.connect() as conn:
        load(conn, polls, hours, zones)
        report.build_report_tables(conn, as_of)
        (as_of,) = conn.execute("SELECT as_of FROM report_as_of").fetchall()[0]
        gaps = conn.execute("SELECT store_key, b, lo, hi FROM interval_segments").fetchall()
        business = conn.execute("SELECT store_key, start_utc, end_utc FROM localized_business_hours").fetchall()
        model = conn.execute(
            "SELECT store_key, b, open_hour, open_day, open_week FROM interval_segment_model"
        ).fetchall()
    by_store = {}
    for store_key, start, end in business:
        by_store.setdefault(store_key, []).append((start, end))
    windows = [as_of - timedelta(hours=hours) for hours in (1, 24, 168)]
    expected = {}
    for store_key, b, lo, hi in gaps:
        seconds = [
            sum(
                max(0.0, (min(hi, end) - max(lo, start, window_start)).total_seconds())
                for start, end in by_store.get(store_key, [])
            )
            for window_start in windows
        ]
        if seconds[2] > 0:
            expected[(store_key, b)] = seconds
    assert len({(store_key, b) for store_key, b, *_ in model}) == len(model), "a gap in more than one row"
    assert {(store_key, b) for store_key, b, *_ in model} == set(expected)
    for store_key, b, *seconds in model:
        assert seconds == pytest.approx(expected[(store_key, b)], abs=1e-6), (store_key, b)


@pytest.mark.parametrize("family", sample.TRUTH_FAMILIES)
def test_the_intervals_are_calibrated_against_generated_truth(family, tmp_path):
    """The acceptance test of the intervals: on 2,000 generated stores of each truth family the
    day and week intervals hold the true uptime for 90 +- 3 % of the stores open in the window,
    the hour intervals for 87-97 % (calibration.TARGETS), and they are not trivially wide."""
    table = calibration.calibrate(family, CALIBRATION_STORES, seed=3, workdir=tmp_path)
    print(table.to_string(index=False))
    rows = table.set_index(["window", "group"])
    for window, (low, high) in calibration.TARGETS.items():
        overall = rows.loc[(window, "all")]
        assert overall["stores"] >= 600
        assert low <= overall["coverage"] <= high, (window, overall["coverage"])
        # Few or many polls, neither group is left far behind (reported in make bench).
        for group in ("few polls", "many polls"):
            assert rows.loc[(window, group), "coverage"] >= 0.8, (window, group)
    assert rows.loc[("week", "all"), "stores"] == CALIBRATION_STORES
    # [0, business time] would hold every truth: the week's intervals are far narrower.
    assert rows.loc[("week", "all"), "mean_width_share"] < 0.15
