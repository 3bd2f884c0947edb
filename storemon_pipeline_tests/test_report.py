"""The report: worked examples, an independent oracle, invariants, the CLI and full size."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storemon_pipeline.assets.ingestion import ingestion_assets
from storemon_pipeline.assets.report import REPORT_CHECK_DESCRIPTIONS, report_assets
from storemon_pipeline.core import ingest, report, sample
from storemon_pipeline.core import warehouse as warehouse_module
from storemon_pipeline.core.db import configure
from storemon_pipeline.core.settings import Settings, report_record_path
from storemon_pipeline.core.warehouse import PostgresWarehouse, WarehouseError, open_warehouse, sql_literal
from storemon_pipeline.resources import build_resources
from storemon_pipeline_tests.conftest import REPORT_ASSETS, SHARED_DATA, materialization, requires_shared_data, table
from storemon_pipeline_tests.report_oracle import oracle_report

REPO = Path(__file__).resolve().parent.parent
STOREMON = str(Path(sys.executable).parent / "storemon")
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
VALUE_COLUMNS = report.REPORT_COLUMNS[1:]


def load(conn, polls, hours=(), zones=None) -> None:
    """Put rows into a report's source tables without files: polls through ingestion's own
    merge (one row per store and instant), hours and zones as given (parsing is tested on
    its own)."""
    conn.execute(ingest.STAGE_SQL)
    conn.executemany(
        "INSERT INTO checked_polls (store_id, timestamp_utc, status, line_number, reason) VALUES (?, ?, ?, 0, '')",
        [list(p) for p in polls],
    )
    ingest.merge_staged_polls(conn, ingest.IngestResult(source="test"))
    report.key_polls(conn, "merged_polls")
    conn.execute(
        "CREATE TABLE raw_business_hours (store_id VARCHAR, day_of_week TINYINT, start_time_local TIME, end_time_local TIME)"
    )
    conn.execute("CREATE TABLE raw_store_timezones (store_id VARCHAR, timezone_str VARCHAR)")
    if hours:
        conn.executemany("INSERT INTO raw_business_hours VALUES (?, ?, ?, ?)", [list(h) for h in hours])
    if zones:
        conn.executemany("INSERT INTO raw_store_timezones VALUES (?, ?)", list(map(list, zones.items())))


def compute(polls, hours=(), zones=None, as_of=None) -> dict[str, dict[str, float]]:
    with duckdb.connect() as conn:
        load(conn, polls, hours, zones)
        report.build_report_tables(conn, as_of or max(t for _, t, _ in polls), report.PLAIN_STEPS)
        frame = conn.execute(report.REPORT_QUERY).df()
    return {row["store_id"]: {c: float(row[c]) for c in VALUE_COLUMNS} for row in frame.to_dict("records")}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- worked examples (docs/report.md), each computed by hand --------------------------------


def test_example_nearest_poll_switches_halfway():
    # Monday 2023-01-23, America/Chicago (UTC-6), open 09:00-12:00 local, closed other days.
    # Polls 10:14 (active) and 11:15 (inactive) local; as_of 12:00 local = 18:00 UTC.
    # Up 09:00-10:44:30 = 1.7417 h, down 10:44:30-12:00 = 1.2583 h; the last hour
    # (11:00-12:00 local) is all down. Last Monday's hours end exactly where the week starts.
    got = compute(
        polls=[("s", utc("2023-01-23 16:14:00"), "active"), ("s", utc("2023-01-23 17:15:00"), "inactive")],
        hours=[("s", 0, "09:00:00", "12:00:00")],
        zones={"s": "America/Chicago"},
        as_of=utc("2023-01-23 18:00:00"),
    )
    assert got["s"] == {
        "uptime_last_hour": 0.0,
        "uptime_last_day": 1.74,
        "uptime_last_week": 1.74,
        "downtime_last_hour": 60.0,
        "downtime_last_day": 1.26,
        "downtime_last_week": 1.26,
    }


def test_example_daylight_saving_sunday():
    # Sunday 2023-03-12, America/Chicago springs forward at 02:00 -> 03:00. Open 01:00-04:00
    # local is 07:00-09:00 UTC: two hours of business, not three. One active poll at 03:30 CDT.
    got = compute(
        polls=[("s", utc("2023-03-12 08:30:00"), "active")],
        hours=[("s", 6, "01:00:00", "04:00:00")],
        zones={"s": "America/Chicago"},
        as_of=utc("2023-03-12 10:00:00"),
    )
    assert (got["s"]["uptime_last_day"], got["s"]["downtime_last_day"]) == (2.0, 0.0)
    assert (got["s"]["uptime_last_hour"], got["s"]["downtime_last_hour"]) == (0.0, 0.0)  # closed 09:00-10:00 UTC


def test_example_hours_past_midnight():
    # Friday 2023-01-27, America/New_York (UTC-5), open 18:00-02:00: 23:00 Fri - 07:00 Sat UTC.
    # Polls 20:00 local (active) and 01:00 local (inactive) -> switch at 03:30 UTC.
    got = compute(
        polls=[("s", utc("2023-01-28 01:00:00"), "active"), ("s", utc("2023-01-28 06:00:00"), "inactive")],
        hours=[("s", 4, "18:00:00", "02:00:00")],
        zones={"s": "America/New_York"},
        as_of=utc("2023-01-28 07:00:00"),
    )
    assert got["s"] == {
        "uptime_last_hour": 0.0,
        "uptime_last_day": 4.5,
        "uptime_last_week": 4.5,
        "downtime_last_hour": 60.0,
        "downtime_last_day": 3.5,
        "downtime_last_week": 3.5,
    }


def test_example_two_shifts_a_day():
    # Monday 2023-01-23, America/Chicago: 09:00-11:00 and 13:00-15:00 local (15-17, 19-21 UTC).
    # Inactive at 10:00, active at 14:00 local: the switch at 12:00 falls between the shifts.
    got = compute(
        polls=[("s", utc("2023-01-23 16:00:00"), "inactive"), ("s", utc("2023-01-23 20:00:00"), "active")],
        hours=[("s", 0, "09:00:00", "11:00:00"), ("s", 0, "13:00:00", "15:00:00")],
        as_of=utc("2023-01-23 21:00:00"),
    )
    assert got["s"] == {
        "uptime_last_hour": 60.0,
        "uptime_last_day": 2.0,
        "uptime_last_week": 2.0,
        "downtime_last_hour": 0.0,
        "downtime_last_day": 2.0,
        "downtime_last_week": 2.0,
    }


def test_example_no_evidence_and_open_24x7():
    # "closed" has a poll only outside its hours: all its business time is down.
    # "always" has no hours (24x7) and no zone: active at 00:00, inactive at 12:00 UTC, so up
    # until 06:00 and down after, back to the start of the week.
    got = compute(
        polls=[
            ("closed", utc("2023-01-23 14:00:00"), "active"),  # 08:00 local, before opening
            ("always", utc("2023-01-23 00:00:00"), "active"),
            ("always", utc("2023-01-23 12:00:00"), "inactive"),
        ],
        hours=[("closed", 0, "09:00:00", "12:00:00")],
        as_of=utc("2023-01-23 18:00:00"),
    )
    assert (got["closed"]["uptime_last_day"], got["closed"]["downtime_last_day"]) == (0.0, 3.0)
    assert got["always"] == {
        "uptime_last_hour": 0.0,
        "uptime_last_day": 12.0,
        "uptime_last_week": 156.0,
        "downtime_last_hour": 60.0,
        "downtime_last_day": 12.0,
        "downtime_last_week": 12.0,
    }


def test_same_instant_polls_with_different_status_count_as_inactive():
    got = compute(
        polls=[("s", utc("2023-01-23 12:00:00"), "active"), ("s", utc("2023-01-23 12:00:00"), "inactive")],
        as_of=utc("2023-01-23 13:00:00"),
    )
    assert got["s"]["uptime_last_week"] == 0.0 and got["s"]["downtime_last_week"] == 168.0


def test_an_end_time_of_24_00_means_midnight_like_23_59_59(tmp_path):
    from storemon_pipeline_tests.conftest import (
        HOURS_HEADER,
        POLLS_HEADER,
        ZONES_HEADER,
        csv_text,
        make_settings,
        write_text,
    )

    source = tmp_path / "sources"
    polls = [
        f"{store},{status},2023-01-23 {hour:02d}:30:00 UTC"
        for store in ("midnight", "late")
        for hour, status in ((0, "active"), (3, "inactive"), (4, "active"))
    ]
    write_text(source / "store_status.csv", csv_text(POLLS_HEADER, polls))
    write_text(
        source / "business_hours.csv",
        csv_text(HOURS_HEADER, ["midnight,6,18:00:00,24:00:00", "late,6,18:00:00,23:59:59"]),
    )
    write_text(source / "timezones.csv", csv_text(ZONES_HEADER, ["midnight,America/Chicago", "late,America/Chicago"]))
    settings = make_settings(tmp_path / "home", source)
    outcome = ingest.ingest(open_warehouse(settings), source, progress=lambda message: None)
    assert outcome.results["business_hours"].rows_rejected == 0
    frame, _ = report.compute_report(open_warehouse(settings), as_of=utc("2023-01-23 06:00:00"))
    rows = frame.set_index("store_id").astype(float)
    # Sunday 18:00-24:00 in Chicago is 00:00-06:00 UTC on Monday: six hours, some of them down.
    assert rows.loc["midnight"].tolist() == rows.loc["late"].tolist()
    assert rows.loc["midnight", "uptime_last_day"] + rows.loc["midnight", "downtime_last_day"] == 6.0
    assert rows.loc["midnight", "downtime_last_day"] > 0


# --- the oracle, on random stores ------------------------------------------------------------

ZONES = [
    "America/Chicago",
    "America/New_York",
    "America/Los_Angeles",
    "America/Phoenix",
    "Europe/London",
    "Europe/Dublin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
]
# Weeks around daylight-saving changes in both directions and both hemispheres.
DST_DAYS = [
    datetime(2023, 3, 12),
    datetime(2023, 11, 5),
    datetime(2023, 3, 26),
    datetime(2023, 10, 29),
    datetime(2023, 4, 2),
    datetime(2023, 10, 1),
    datetime(2023, 9, 3),
    datetime(2023, 1, 20),
]
clock = st.one_of(
    st.sampled_from([time(0), time(23, 59, 59), time(2, 30), time(1, 30), time(12)]),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59])),
)
hour_rows = st.lists(st.tuples(st.integers(0, 6), clock, clock), max_size=6)
store = st.fixed_dictionaries(
    {
        "zone": st.one_of(st.none(), st.sampled_from(ZONES)),
        "hours": hour_rows,
        "polls": st.lists(
            st.tuples(st.integers(-10 * 24 * 60, 2 * 24 * 60), st.sampled_from(["active", "inactive"])),
            min_size=1,
            max_size=40,
        ),
    }
)


# A random case: up to 4 stores around a change of clocks, and as_of at or before the newest poll.
RANDOM_CASE = {
    "stores": st.lists(store, min_size=1, max_size=4),
    "around": st.sampled_from(DST_DAYS),
    "as_of_shift": st.one_of(st.none(), st.integers(-3000, 0)),
}


def as_of_before_newest(polls, as_of_shift: int | None) -> datetime | None:
    """as_of ``as_of_shift`` minutes from the newest poll (None: the default, the newest)."""
    return None if as_of_shift is None else max(t for _, t, _ in polls) + timedelta(minutes=as_of_shift)


def parsed_hours(hours: list) -> list:
    """Hours rows with their times parsed, as the oracle takes them."""
    return [(s, d, time.fromisoformat(a), time.fromisoformat(b)) for s, d, a, b in hours]


def random_stores(stores: list[dict], around: datetime) -> tuple[list, list, dict]:
    """Rows of polls, hours and zones for the hypothesis ``store`` specs, polls around ``around``."""
    polls, hours, zones = [], [], {}
    for i, spec in enumerate(stores):
        store_id = f"store{i}"
        if spec["zone"]:
            zones[store_id] = spec["zone"]
        hours += [(store_id, day, start.isoformat(), end.isoformat()) for day, start, end in spec["hours"]]
        polls += [(store_id, around + timedelta(minutes=m, seconds=7), status) for m, status in spec["polls"]]
    return polls, hours, zones


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**RANDOM_CASE)
def test_report_matches_the_oracle(stores, around, as_of_shift):
    polls, hours, zones = random_stores(stores, around)
    as_of = as_of_before_newest(polls, as_of_shift)
    expected = oracle_report(polls, parsed_hours(hours), zones, as_of)
    got = compute(polls, hours, zones, as_of)
    assert set(got) == set(expected)
    for store_id, row in expected.items():
        for name, value in row.items():
            column = name.replace("_hour", "_last_hour").replace("_day", "_last_day").replace("_week", "_last_week")
            assert abs(got[store_id][column] - value) <= 0.0101, (store_id, column, got[store_id][column], value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.one_of(st.none(), st.sampled_from(ZONES)),
    hours=hour_rows,
    poll_minutes=st.lists(st.lists(st.integers(-30 * 24 * 60, 0), min_size=1, max_size=5), min_size=2, max_size=4),
    around=st.sampled_from(DST_DAYS),
)
def test_stores_with_the_same_hours_and_zone_get_the_intervals_each_gets_alone(zone, hours, poll_minutes, around):
    """Stores with the same zone and hours rows share one computation of their business
    intervals when their dates before the week are the same too (localized_business_hours.sql):
    whatever its own polls, each store must get exactly the intervals it gets computed alone."""
    stores = [{"zone": zone, "hours": hours, "polls": [(m, "active") for m in minutes]} for minutes in poll_minutes]
    polls, hours_rows, zones = random_stores(stores, around)
    as_of = around + timedelta(days=1)

    def intervals(store_polls) -> list:
        with duckdb.connect() as conn:
            load(conn, store_polls, hours_rows, zones)
            report.build_report_tables(conn, as_of, ("localized_business_hours",))
            return conn.execute(
                "SELECT store_id, start_utc, end_utc FROM localized_business_hours JOIN report_stores USING (store_key) "
                "ORDER BY ALL"
            ).fetchall()

    alone = sorted(row for i in range(len(stores)) for row in intervals([p for p in polls if p[0] == f"store{i}"]))
    assert intervals(polls) == alone


def test_a_store_whose_only_poll_is_decades_old_costs_two_dates_and_follows_the_rules():
    """Before the week, only each earlier poll's own local date (and the day before) is built:
    a 1970 poll next to this week's data must not build fifty years of hours for every store."""
    now = datetime(2023, 3, 14, 12, 0)
    polls = [
        ("ancient", datetime(1970, 1, 5, 15, 0), "active"),  # a Monday, 09:00 in Chicago: in hours
        ("ancient_24x7", datetime(1970, 1, 1, 0, 0), "active"),  # open since: one interval of 53 years
        *(("today", now - timedelta(hours=h), "active" if h % 5 else "inactive") for h in range(0, 200, 3)),
    ]
    hours = [("ancient", 0, "08:00:00", "17:00:00"), ("today", 1, "09:00:00", "17:00:00")]
    zones = {"today": "America/New_York"}
    expected = oracle_report(polls, parsed_hours(hours), zones)
    with duckdb.connect() as conn:
        load(conn, polls, hours, zones)
        report.build_report_tables(conn, now)
        frame = conn.execute(report.REPORT_QUERY).df()
        dates_built = conn.execute(
            "SELECT count(*) FROM localized_business_hours JOIN report_stores USING (store_key) WHERE store_id = 'ancient'"
        ).fetchall()[0][0]
    got = {row["store_id"]: row for row in frame.to_dict("records")}
    assert set(got) == set(expected)
    for store_id, row in expected.items():
        for name, value in row.items():
            column = name.replace("_hour", "_last_hour").replace("_day", "_last_day").replace("_week", "_last_week")
            assert abs(float(got[store_id][column]) - value) <= 0.0101, (store_id, column)
    # Both ancient stores are up all week (each one poll, active and in hours, is nearest to all of it).
    assert float(got["ancient"]["uptime_last_week"]) == 9.0 and float(got["ancient_24x7"]["uptime_last_week"]) == 168.0
    assert dates_built <= 2 + 12  # its 1970 date (and the day before) + the days around the week


def test_an_earlier_poll_is_tested_on_its_local_date_not_its_utc_date():
    """Each store's one poll lies before the week, on a local date other than its UTC date (or,
    for an old offset of seconds, in a quarter hour across local midnight), and it is in hours
    only on that local date or through the day before's hours past midnight. If it is found
    in hours, it is the evidence for the whole week: the store is up all its business time."""
    now = datetime(2023, 3, 14, 12, 0)
    cases = {
        # 2023-03-02 20:00 UTC = Friday 03-03 05:00 in Tokyo; open Fridays 04:00-06:00.
        "tokyo": ("Asia/Tokyo", datetime(2023, 3, 2, 20, 0), [(4, "04:00:00", "06:00:00")]),
        # 2023-03-07 07:30 UTC = Monday 03-06 23:30 in Los Angeles; open Mondays 22:00-02:00.
        "los_angeles": ("America/Los_Angeles", datetime(2023, 3, 7, 7, 30), [(0, "22:00:00", "02:00:00")]),
        # 2023-03-01 18:20 UTC = Thursday 03-02 00:05 in Kathmandu (+05:45); open Wednesdays 20:00-01:00.
        "kathmandu": ("Asia/Kathmandu", datetime(2023, 3, 1, 18, 20), [(2, "20:00:00", "01:00:00")]),
        # 1970-01-06 00:44:40 UTC = Tuesday 01-06 00:00:10 in Monrovia (-00:44:30 until 1972), in a
        # quarter hour that starts on Monday there; open Tuesdays 00:00-01:00.
        "monrovia": ("Africa/Monrovia", datetime(1970, 1, 6, 0, 44, 40), [(1, "00:00:00", "01:00:00")]),
    }
    polls = [(store_id, polled, "active") for store_id, (_, polled, _) in cases.items()]
    hours = [(store_id, *row) for store_id, (_, _, rows) in cases.items() for row in rows]
    zones = {store_id: zone for store_id, (zone, _, _) in cases.items()}
    expected = oracle_report(polls, parsed_hours(hours), zones, now)
    got = compute(polls, hours, zones, now)
    assert set(got) == set(cases)
    for store_id, row in expected.items():
        assert row["uptime_week"] > 0 and row["downtime_week"] == 0, (store_id, row)
        assert abs(got[store_id]["uptime_last_week"] - row["uptime_week"]) <= 0.0101, (store_id, got[store_id], row)
        assert got[store_id]["downtime_last_week"] == 0, (store_id, got[store_id])


@given(
    local=st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2025, 12, 31)), zone=st.sampled_from(ZONES)
)
@settings(max_examples=300, deadline=None)
def test_local_to_utc_follows_zoneinfo_fold_0(local, zone):
    from zoneinfo import ZoneInfo

    from storemon_pipeline_tests.report_oracle import to_utc

    local = local.replace(microsecond=0)
    with duckdb.connect() as conn:
        conn.execute((report.SQL_DIR / "time_zone_macros.sql").read_text())
        got = conn.execute("SELECT local_to_utc(?, CAST(? AS TIMESTAMP))", [zone, local]).fetchall()[0][0]
    assert got == to_utc(local, ZoneInfo(zone))


# --- invariants on the sample, through the Dagster assets -------------------------------------


def materialize_report(
    settings: Settings, as_of: str | None = None, snapshot: int | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ingestion_assets, *report_assets],
        resources=build_resources(settings),
        run_config={"ops": {"report": {"config": {"as_of": as_of, "snapshot": snapshot}}}},
    )


def newest_sample_poll() -> str:
    """The sample's newest poll, as a report's as_of prints it."""
    stamps = pd.read_csv(SAMPLE / "store_status.csv.gz", dtype=str)["timestamp_utc"].str.removesuffix(" UTC")
    return str(pd.to_datetime(stamps, format="ISO8601").max().to_pydatetime())


def read_report(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"store_id": str})


def check_invariants(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == report.REPORT_COLUMNS
    assert frame["store_id"].is_monotonic_increasing and frame["store_id"].is_unique
    for name, limit in (("hour", 60), ("day", 24), ("week", 168)):
        up, down = frame[f"uptime_last_{name}"], frame[f"downtime_last_{name}"]
        assert ((up >= 0) & (down >= -1e-9) & (up + down <= limit + 1e-9)).all(), name


def matches_the_oracle(
    frame: pd.DataFrame, source_dir: Path, as_of: datetime, stores: int | None = None, seed: int = 0
) -> None:
    """The report's rows equal the plain-Python oracle's, computed from the source files
    themselves (for ``stores`` random stores, or all), within rounding."""
    polls = pd.read_csv(next(source_dir.glob("store_status.csv*")), dtype=str)
    hours = pd.read_csv(next(source_dir.glob("business_hours.csv*")), dtype=str)
    zones = pd.read_csv(next(source_dir.glob("timezones.csv*")), dtype=str)
    chosen = frame["store_id"] if stores is None else frame["store_id"].sample(stores, random_state=seed)
    polls = polls[polls["store_id"].isin(set(chosen))]
    hours = hours[hours["store_id"].isin(set(chosen))]
    day = "dayOfWeek" if "dayOfWeek" in hours else "day"
    expected = oracle_report(
        [
            (row.store_id, datetime.fromisoformat(row.timestamp_utc.removesuffix(" UTC")), row.status)
            for row in polls.itertuples()
        ],
        [
            (
                row.store_id,
                int(getattr(row, day)),
                time.fromisoformat(row.start_time_local),
                time.fromisoformat(row.end_time_local),
            )
            for row in hours.itertuples()
        ],
        dict(zip(zones["store_id"], zones["timezone_str"])),
        as_of,
    )
    got = frame.set_index("store_id")
    assert set(expected) == set(chosen)
    for store_id, row in expected.items():
        for name, value in row.items():
            column = name.replace("_hour", "_last_hour").replace("_day", "_last_day").replace("_week", "_last_week")
            assert abs(float(got.loc[store_id, column]) - value) <= 0.0101, (
                store_id,
                column,
                got.loc[store_id, column],
                value,
            )


@pytest.fixture
def sample_settings(tmp_path, mode, request) -> Settings:
    warehouse = request.getfixturevalue("postgres_url") if mode == "postgres" else "duckdb"
    return Settings(home=tmp_path / "home", source_dir=REPO / "data" / "sample", warehouse=warehouse)


def test_report_asset_writes_the_csv_and_metadata(sample_settings):
    settings = sample_settings
    result = materialize_report(settings)
    meta = materialization(result, "store_report").metadata
    path = settings.reports_dir / f"{result.run_id}.csv"
    assert meta["path"].value == str(path) and meta["dagster/row_count"].value == 300
    newest_poll = pd.to_datetime(
        pd.read_csv(settings.source_dir / "store_status.csv.gz", dtype=str)["timestamp_utc"].str.removesuffix(" UTC")
    ).max()
    assert pd.Timestamp(meta["as_of"].value) == newest_poll
    assert meta["load_id"].value == 1
    frame = read_report(path)
    assert len(frame) == 300
    preview = meta["most_downtime_last_week"].value.records
    assert len(preview) == 10 and preview[0].data["downtime_last_week"] == frame["downtime_last_week"].max()
    # The intermediate assets are inspectable: Parquet files named in their metadata.
    intervals_file = Path(materialization(result, "status_intervals").metadata["path"].value)
    statuses = duckdb.sql(f"SELECT DISTINCT status FROM '{intervals_file}'").fetchall()
    assert {status for (status,) in statuses} <= {"active", "inactive"} and statuses
    check_invariants(frame)
    matches_the_oracle(frame, settings.source_dir, newest_poll.to_pydatetime())
    # How well the ids of the three files match, from the sample itself.
    hours_ids = pd.read_csv(settings.source_dir / "business_hours.csv", dtype=str)["store_id"].nunique()
    zone_ids = pd.read_csv(settings.source_dir / "timezones.csv", dtype=str)["store_id"].nunique()
    assert meta["polled_stores_without_hours"].value == 300 - hours_ids
    assert meta["polled_stores_without_zone"].value == 300 - zone_ids
    assert meta["hours_ids_matching_no_polled_store"].value == 0 and meta["id_warnings"].value == "none"
    # The report's own checks ran and passed.
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(REPORT_CHECK_DESCRIPTIONS, True)
    assert not list(settings.reports_dir.glob(".*.tmp"))
    # The incidents: a file beside the report, its rows in the asset's metadata and the report's.
    incidents = pd.read_csv(report.report_file_path(settings.reports_dir, result.run_id, "incidents"), dtype=str)
    assert list(incidents.columns) == report.INCIDENT_COLUMNS and len(incidents) > 0
    assert materialization(result, "store_incidents").metadata["dagster/row_count"].value == len(incidents)
    assert meta["incidents_last_week"].value == len(incidents)
    assert set(incidents["store_id"]) <= set(frame["store_id"])
    # ... and the daily breakdown: 7 local dates per store.
    daily = pd.read_csv(report.report_file_path(settings.reports_dir, result.run_id, "daily"), dtype={"store_id": str})
    assert list(daily.columns) == report.DAILY_COLUMNS and len(daily) == 7 * 300
    assert materialization(result, "store_daily_uptime").metadata["dagster/row_count"].value == len(daily)
    # ... and the extended report: the report's rows with intervals and evidence, and in the
    # report's metadata the share of wide week intervals and the stores with least evidence.
    extended = pd.read_csv(
        report.report_file_path(settings.reports_dir, result.run_id, "extended"), dtype={"store_id": str}
    )
    assert list(extended.columns) == report.EXTENDED_COLUMNS
    plain = pd.read_csv(report.report_path(settings.reports_dir, result.run_id), dtype={"store_id": str})
    pd.testing.assert_frame_equal(extended[report.REPORT_COLUMNS], plain)
    assert materialization(result, "store_report_extended").metadata["dagster/row_count"].value == 300
    open_week = extended[extended["uptime_last_week"] + extended["downtime_last_week"] > 0]
    wide = (open_week["uptime_last_week_hi"] - open_week["uptime_last_week_lo"]) > 0.1 * (
        open_week["uptime_last_week"] + open_week["downtime_last_week"]
    )
    assert meta["wide_week_interval_share"].value == pytest.approx(wide.mean(), abs=1e-4)
    least = [row.data for row in meta["least_evidence_last_week"].value.records]
    fewest = open_week.sort_values(["polls_last_week", "unobserved_last_week"], ascending=[True, False]).head(10)
    assert [row["polls_last_week"] for row in least] == fewest["polls_last_week"].tolist()
    assert {row["store_id"] for row in least} <= set(open_week["store_id"])
    record = report.ReportRecord.read(report_record_path(settings.reports_dir, result.run_id))
    assert (record.report_id, record.row_count, record.load_id, record.as_of) == (
        result.run_id,
        300,
        1,
        str(newest_poll.to_pydatetime()),
    )


def test_materializing_any_report_asset_computes_all_three_from_the_newest_data(tmp_path):
    """A partial materialization never reuses another run's leftovers (docs/report.md rule 1)."""
    settings = Settings(home=tmp_path / "home", source_dir=REPO / "data" / "sample")
    old = materialize_report(settings, as_of="2023-03-13 06:30:00")
    assert materialization(old, "store_report").metadata["as_of"].value == "2023-03-13 06:30:00"
    # Selecting one of them alone is refused (nothing can compute it without the others) ...
    with pytest.raises(dg.DagsterInvalidDefinitionError):
        dg.materialize(
            [*ingestion_assets, *report_assets], resources=build_resources(settings), selection=["store_report"]
        )
    # ... and what the UI's "Materialize" does, adding the assets it needs, computes all three.
    for selected in ("store_report", "status_intervals"):
        selection = dg.AssetSelection.assets(selected).required_multi_asset_neighbors()
        result = dg.materialize(
            [*ingestion_assets, *report_assets], resources=build_resources(settings), selection=selection
        )
        materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
        assert materialized == REPORT_ASSETS
        assert materialization(result, "store_report").metadata["as_of"].value == newest_sample_poll()


def test_dagster_cli_materialize_never_reuses_an_older_report(tmp_path):
    settings = Settings(home=tmp_path / "home", source_dir=REPO / "data" / "sample")
    materialize_report(settings, as_of="2023-03-13 06:30:00")
    (tmp_path / "dagster").mkdir()
    env = {
        **os.environ,
        "STOREMON_HOME": str(settings.home),
        "STOREMON_SOURCE_DIR": str(settings.source_dir),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }

    def materialize(selection: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "dagster"),
                "asset",
                "materialize",
                "--select",
                selection,
                "-m",
                "storemon_pipeline.definitions",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    # One asset alone: Dagster refuses, because the three are one computation.
    alone = materialize("store_report")
    assert alone.returncode != 0 and "does not support subsetting" in alone.stderr
    done = materialize("group:report")
    assert done.returncode == 0, done.stderr[-3000:]
    records = [report.ReportRecord.read(path) for path in settings.reports_dir.glob("*.json")]
    assert sorted(record.as_of for record in records) == ["2023-03-13 06:30:00", newest_sample_poll()]


def storemon_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STOREMON, "report", *args], capture_output=True, text=True, timeout=300)


def test_a_snapshot_recomputes_a_past_report_byte_identically(tmp_path, mode, request):
    """Report; ingest late polls dated before that report's as_of; the first snapshot still
    gives the first report, byte for byte."""
    warehouse = ["--warehouse", request.getfixturevalue("postgres_url")] if mode == "postgres" else []
    home, source = tmp_path / "home", tmp_path / "source"
    source.mkdir()
    for name in ("business_hours.csv", "timezones.csv"):
        (source / name).write_bytes((REPO / "data" / "sample" / name).read_bytes())
    polls = pd.read_csv(REPO / "data" / "sample" / "store_status.csv.gz", dtype=str)
    late = polls.sample(n=400, random_state=3)
    polls.drop(late.index).to_csv(source / "store_status.csv", index=False)
    first = storemon_cli("--data-dir", str(source), "--home", str(home), *warehouse)
    assert first.returncode == 0, first.stderr
    # Late polls arrive: all dated before the first report's as_of, and all inactive.
    late.assign(status="inactive").to_csv(source / "store_status.csv", mode="a", header=False, index=False)
    second = storemon_cli("--data-dir", str(source), "--home", str(home), *warehouse)
    assert second.returncode == 0, second.stderr
    assert second.stdout != first.stdout
    again = storemon_cli("--home", str(home), "--snapshot", "1", *warehouse)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert storemon_cli("--home", str(home), "--snapshot", "2", *warehouse).stdout == second.stdout
    missing = storemon_cli("--home", str(home), "--snapshot", "9", *warehouse)
    assert missing.returncode == 1 and "snapshot 9 is not a load" in missing.stderr


def test_a_report_keeps_no_copy_of_the_raw_polls_and_lets_go_of_the_file_once_keyed(settings):
    """The snapshot's polls are read once, into the report's keyed table: after that neither
    the raw table nor a view of it is left, and (embedded) another process may write the file."""
    warehouse = open_warehouse(settings)
    ingest.ingest(warehouse, settings.source_dir, progress=lambda message: None)
    with report.ReportComputation(warehouse) as run:
        names = run.conn.execute(
            "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
        )
        assert "raw_store_polls" not in {name for (name,) in names.fetchall()}
        assert (
            run.value("SELECT count(*) FROM report_polls")
            == table(settings, "SELECT count(*) FROM {wh}.raw_store_polls")[0][0]
        )
        if settings.embedded:
            writer = subprocess.run(
                [sys.executable, "-c", f"import duckdb; duckdb.connect({str(settings.database)!r}).close()"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert writer.returncode == 0, writer.stderr
        run.build_all()
        assert all(count == 0 for count in run.check_report().values()), run.check_report()


def test_both_warehouses_give_byte_identical_reports_on_the_sample(tmp_path, postgres_url):
    embedded = storemon_cli("--data-dir", str(REPO / "data" / "sample"))
    shared = storemon_cli("--data-dir", str(REPO / "data" / "sample"), "--warehouse", postgres_url)
    assert embedded.returncode == 0 and shared.returncode == 0, embedded.stderr + shared.stderr
    assert embedded.stdout == shared.stdout and embedded.stdout.count("\n") == 301


def test_shuffled_input_gives_the_same_report_and_all_active_means_no_downtime(tmp_path):
    counts = sample.generate(tmp_path / "a", stores=60, days=9, seed=5)
    assert counts["polls"] > 0
    frames = {
        name: pd.read_csv(tmp_path / "a" / name, dtype=str)
        for name in ("store_status.csv.gz", "business_hours.csv", "timezones.csv")
    }
    shuffled = tmp_path / "b"
    shuffled.mkdir()
    for name, frame in frames.items():
        frame.sample(frac=1, random_state=7)[list(reversed(frame.columns))].to_csv(shuffled / name, index=False)
    active = tmp_path / "c"
    active.mkdir()
    for name, frame in frames.items():
        frame.assign(**({"status": "active"} if "status" in frame else {})).to_csv(active / name, index=False)
    reports = {}
    for name in ("a", "b", "c"):
        out = tmp_path / f"{name}.csv"
        done = subprocess.run(
            [STOREMON, "report", "--data-dir", str(tmp_path / name), "--out", str(out)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        reports[name] = read_report(out)
    pd.testing.assert_frame_equal(reports["a"], reports["b"])
    assert (reports["c"][["downtime_last_hour", "downtime_last_day", "downtime_last_week"]] >= 0).all().all()
    with_evidence = reports["c"][reports["c"]["uptime_last_week"] > 0]
    assert len(with_evidence) > 0
    assert (with_evidence[["downtime_last_hour", "downtime_last_day", "downtime_last_week"]] == 0).all().all()


def test_a_stored_status_other_than_active_or_inactive_stops_the_report(tmp_path, source_dir):
    """Validation admits no other status; one that reached the warehouse anyway (written there
    by hand) stops the report with a message naming it, instead of counting as either."""
    settings = Settings(home=tmp_path / "home", source_dir=source_dir)
    ingest.ingest(open_warehouse(settings), source_dir, progress=lambda message: None)
    with duckdb.connect(str(settings.database)) as conn:
        conn.execute("UPDATE raw_store_polls SET status = 'Active' WHERE status = 'active'")
    with pytest.raises(WarehouseError, match="a poll status is neither active nor inactive: Active$"):
        report.compute_report(open_warehouse(settings))


def test_an_earlier_as_of_ignores_later_polls(tmp_path):
    source = REPO / "data" / "sample"
    as_of = "2023-03-13 06:30:00"
    explicit = tmp_path / "explicit.csv"
    done = subprocess.run(
        [STOREMON, "report", "--data-dir", str(source), "--as-of", as_of, "--out", str(explicit)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # The same report from a file cut at as_of.
    cut = tmp_path / "cut"
    cut.mkdir()
    polls = pd.read_csv(source / "store_status.csv.gz", dtype=str)
    stamps = pd.to_datetime(polls["timestamp_utc"].str.removesuffix(" UTC"))
    polls[stamps <= pd.Timestamp(as_of)].to_csv(cut / "store_status.csv", index=False)
    for name in ("business_hours.csv", "timezones.csv"):
        (cut / name).write_bytes((source / name).read_bytes())
    cut_report = tmp_path / "cut.csv"
    done = subprocess.run(
        [STOREMON, "report", "--data-dir", str(cut), "--as-of", as_of, "--out", str(cut_report)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(read_report(explicit), read_report(cut_report))
    full = subprocess.run([STOREMON, "report", "--data-dir", str(source)], capture_output=True, text=True)
    assert read_report(explicit).shape == read_report(io.StringIO(full.stdout)).shape
    assert not read_report(explicit).equals(read_report(io.StringIO(full.stdout)))


def test_cli_bad_input_exits_non_zero_with_the_errors(tmp_path):
    source = tmp_path / "src"
    sample.generate(source, stores=5, days=2, seed=1)
    (source / "timezones.csv").write_text("store_id,zone\n1,America/Chicago\n")
    done = subprocess.run([STOREMON, "report", "--data-dir", str(source)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert "timezones.csv: line 1: missing column(s) timezone_str" in done.stderr
    (source / "timezones.csv").write_text("store_id,timezone_str\n1,Nowhere/Atlantis\n")
    done = subprocess.run([STOREMON, "report", "--data-dir", str(source)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout.startswith("store_id,uptime_last_hour")
    assert "timezones.csv: line 2: timezone_str is not a known IANA time zone" in done.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["report", "--data-dir", "/no/such/folder"], "error: --data-dir /no/such/folder: no such folder"),
        (["report", "--snapshot", "x", "--home", "{tmp}"], "error: snapshot 'x' is not a load id (a positive integer)"),
        (["report", "--home", "{tmp}"], "error: no polls have been ingested"),
        (["get-report", "../x"], "error: report_id '../x' is not a run id"),
    ],
)
def test_every_cli_failure_is_one_line_and_verbose_shows_the_trace(tmp_path, args, expected):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    done = subprocess.run([STOREMON, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode in (1, 2) and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(expected), done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    if args[0] == "report" and "--data-dir" not in args:
        verbose = subprocess.run([STOREMON, *args, "--verbose"], capture_output=True, text=True, timeout=120)
        assert "Traceback" in verbose.stderr or verbose.stderr.startswith(expected)


@requires_shared_data
def test_full_size_public_dataset(tmp_path):
    counts = sample.generate(tmp_path / "full", days=8, seed=11, real_dir=SHARED_DATA)
    assert counts["stores"] > 13_000 and counts["polls"] > 1_700_000
    home, out = tmp_path / "home", tmp_path / "report.csv"
    done = subprocess.run(
        [STOREMON, "report", "--data-dir", str(tmp_path / "full"), "--home", str(home), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frame = read_report(out)
    assert len(frame) == counts["stores"]
    check_invariants(frame)
    as_of = report.ReportRecord.read(next((home / "reports").glob("*.json"))).as_of
    matches_the_oracle(frame, tmp_path / "full", datetime.fromisoformat(as_of), stores=60)
    print(f"full size: {counts}")


# --- the two warehouses give the same bytes on random stores -------------------------------


def write_sources(folder: Path, polls, hours, zones) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(polls, columns=["store_id", "timestamp_utc", "status"]).assign(
        timestamp_utc=lambda f: f["timestamp_utc"].map(lambda t: f"{t:%Y-%m-%d %H:%M:%S.%f} UTC")
    ).to_csv(folder / "store_status.csv", index=False)
    pd.DataFrame(hours, columns=["store_id", "dayOfWeek", "start_time_local", "end_time_local"]).to_csv(
        folder / "business_hours.csv", index=False
    )
    pd.DataFrame(list(zones.items()) or [("nobody", "UTC")], columns=["store_id", "timezone_str"]).to_csv(
        folder / "timezones.csv", index=False
    )
    return folder


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(**RANDOM_CASE)
def test_both_warehouses_give_byte_identical_reports_on_random_stores(
    postgres_server, tmp_path_factory, stores, around, as_of_shift
):
    polls, hours, zones = random_stores(stores, around)
    as_of = as_of_before_newest(polls, as_of_shift)
    root = tmp_path_factory.mktemp("identity")
    source = write_sources(root / "source", polls, hours or [("nobody", 0, "09:00:00", "10:00:00")], zones)
    csv_bytes = []
    for warehouse in ("duckdb", postgres_server.new_database()):
        settings = Settings(home=root / f"home-{len(csv_bytes)}", source_dir=source, warehouse=warehouse)
        ingest.ingest(open_warehouse(settings), source, progress=lambda message: None)
        for shards in (1, 2, 7):
            csv_bytes.append(report_in_shards(open_warehouse(settings), as_of, shards, settings.reports_dir))
    # The same bytes from either warehouse, in any number of store shards.
    assert all(other == csv_bytes[0] for other in csv_bytes[1:])
    assert csv_bytes[0].count(b"\n") == 1 + len({s for s, t, _ in polls if as_of is None or t <= as_of})


def snapshot_polls(warehouse, load_id: int) -> list[tuple]:
    """The polls of a load's snapshot, as a report reads them: (store_id, timestamp_utc, status)."""
    with configure(duckdb.connect()) as conn:

        def keep(snapshot):
            conn.execute(
                "CREATE TABLE kept AS SELECT k.store_id, p.timestamp_utc, p.status "
                "FROM raw_store_polls p JOIN store_keys k USING (store_key)"
            )

        warehouse.load_snapshot(conn, load_id, None, keep)
        return sorted(conn.execute("SELECT * FROM kept").fetchall())


poll_key = st.tuples(st.sampled_from(["a", "b", "c"]), st.datetimes(datetime(1960, 1, 1), datetime(2025, 12, 31)))
poll_status = st.sampled_from(["active", "inactive"])


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    first=st.dictionaries(poll_key, poll_status, min_size=1, max_size=12),
    second=st.dictionaries(poll_key, poll_status, max_size=8),
    data=st.data(),
)
def test_a_snapshot_holds_exactly_the_polls_of_its_load(
    postgres_server, tmp_path_factory, monkeypatch, first, second, data
):
    """Each load's snapshot holds exactly its polls, to the microsecond, before 2000 as after
    (Postgres counts from 2000; its polls are read out as a binary COPY, here a few rows at a
    time). A poll that a later load calls inactive is inactive from that load on only."""
    monkeypatch.setattr(warehouse_module, "_POLL_BLOCK_ROWS", 3)
    # The second load also repeats some of the first's polls, each as inactive or as it was.
    repeated = data.draw(st.lists(st.sampled_from(sorted(first)), unique=True, max_size=4))
    second = {**second, **{key: data.draw(st.sampled_from(["inactive", first[key]])) for key in repeated}}
    expected, seen = [], {}
    for load in (first, second):
        for key, status in load.items():
            seen[key] = "inactive" if "inactive" in (status, seen.get(key)) else status
        expected.append(sorted((store, instant, status) for (store, instant), status in seen.items()))
    root = tmp_path_factory.mktemp("snapshot")
    source = root / "source"
    source.mkdir()
    (source / "business_hours.csv").write_text("store_id,dayOfWeek,start_time_local,end_time_local\n")
    (source / "timezones.csv").write_text("store_id,timezone_str\n")
    for warehouse in ("duckdb", postgres_server.new_database()):
        settings_ = Settings(
            home=root / f"home-{warehouse[:6]}", source_dir=source, warehouse=warehouse, retention_days=0
        )
        lines = "store_id,status,timestamp_utc\n"
        for load_id, load in enumerate((first, second), start=1):
            lines += "".join(
                f"{store},{status},{at:%Y-%m-%d %H:%M:%S.%f} UTC\n" for (store, at), status in load.items()
            )
            (source / "store_status.csv").write_text(lines)
            ingest.ingest(open_warehouse(settings_), source, progress=lambda message: None)
        for load_id, polls in enumerate(expected, start=1):
            assert snapshot_polls(open_warehouse(settings_), load_id) == polls, (warehouse, load_id)


def test_a_snapshot_in_a_layout_other_than_binary_copys_is_refused(postgres_url, tmp_path):
    """The polls' binary COPY is read as fixed-width rows: rows of any other shape are refused
    with one line, never misread. A DATE where the timestamp belongs makes shorter rows; with a
    BIGINT store key as well, rows of the expected width whose fields are not the expected ones."""
    warehouse = PostgresWarehouse(postgres_url)
    columns = warehouse_module.SNAPSHOT_COLUMNS["raw_store_polls"]
    good = "SELECT 1 AS store_key, TIMESTAMP '2023-01-01' AS timestamp_utc, 'active' AS status"
    with warehouse.connection() as pg, pg.cursor() as cur, configure(duckdb.connect()) as conn:
        for bad in (
            good.replace("TIMESTAMP", "DATE"),
            good.replace("TIMESTAMP", "DATE").replace("1 AS", "1::BIGINT AS"),
        ):
            with pytest.raises(WarehouseError, match="^the Postgres warehouse sent the snapshot's polls in a layout"):
                warehouse_module._copy_polls_from_postgres(cur, bad, conn, "raw_store_polls", columns, tmp_path)
        warehouse_module._copy_polls_from_postgres(cur, good, conn, "raw_store_polls", columns, tmp_path)
        assert conn.execute("SELECT * FROM raw_store_polls").fetchall() == [(1, datetime(2023, 1, 1), "active")]


def report_in_shards(warehouse, as_of, shards: int, reports_dir: Path) -> bytes:
    """The report CSV computed shard after shard (what report_job's steps do, without Dagster)."""
    snapshot = warehouse.pin_snapshot(as_of=as_of)
    ranges = warehouse.shards(snapshot, shards)
    # As many as asked, or one per store if fewer (one, empty, if none).
    (polled,) = warehouse.query(
        f"SELECT count(DISTINCT store_key) FROM {{wh}}.raw_store_polls WHERE timestamp_utc <= {sql_literal(snapshot.as_of)}"
    )[0]
    assert len(ranges) == max(1, min(shards, polled))
    assembled = report.AssembledReport([report.compute_shard(warehouse, snapshot, stores) for stores in ranges])
    assembled.write(reports_dir, f"shards-{shards}", warehouse.kind)
    return (reports_dir / f"shards-{shards}.csv").read_bytes()


def test_stores_keyed_out_of_id_order_by_a_later_load_give_the_same_report(tmp_path, postgres_url):
    """Store keys follow arrival: a second load whose stores' ids sort first gives them larger
    keys. The report, whole or in store shards, is byte-identical to one from a single load."""
    polls = pd.read_csv(SAMPLE / "store_status.csv.gz", dtype=str)
    ids = sorted(polls["store_id"].unique())
    late = polls["store_id"].isin(ids[: len(ids) // 2])
    source = tmp_path / "source"
    source.mkdir()
    for name in ("business_hours.csv", "timezones.csv"):
        (source / name).write_bytes((SAMPLE / name).read_bytes())
    reports = []
    for index, (warehouse, loads) in enumerate(
        (("duckdb", (polls,)), ("duckdb", (polls[~late], polls)), (postgres_url, (polls[~late], polls)))
    ):
        settings = Settings(home=tmp_path / f"home-{index}", source_dir=source, warehouse=warehouse)
        for part in loads:
            part.to_csv(source / "store_status.csv", index=False)
            ingest.ingest(open_warehouse(settings), source, progress=lambda message: None)
        keyed = [
            store_id
            for (store_id,) in open_warehouse(settings).query("SELECT store_id FROM {wh}.store_keys ORDER BY store_key")
        ]
        assert sorted(keyed) == ids and (keyed == ids) == (len(loads) == 1)
        for shards in (1, 3):
            report_in_shards(open_warehouse(settings), None, shards, settings.reports_dir)
            # The report and each file beside it (incidents, daily, extended), in store order.
            files = sorted(settings.reports_dir.glob(f"shards-{shards}.*csv"))
            reports.append({path.name.split(".", 1)[1]: path.read_bytes() for path in files})
    assert len(reports[0]) == 1 + len(report.REPORT_FILES)
    assert all(other == reports[0] for other in reports[1:])
    assert reports[0]["csv"].count(b"\n") == 1 + len(ids)


def test_a_copy_whose_ids_a_spreadsheet_mangled_is_noticed(tmp_path):
    source = tmp_path / "sources"
    source.mkdir()
    polls = pd.read_csv(SAMPLE / "store_status.csv.gz", dtype=str)
    polls.to_csv(source / "store_status.csv", index=False)
    for name in ("business_hours.csv", "timezones.csv"):
        frame = pd.read_csv(SAMPLE / name, dtype=str)
        frame["store_id"] = frame["store_id"].map(lambda text: f"{float(text):.5E}")  # what Excel shows
        frame.to_csv(source / name, index=False)
    done = subprocess.run(
        [STOREMON, "report", "--data-dir", str(source), "--out", str(tmp_path / "r.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "note: 300 of 300 polled stores have no business-hours rows (open 24x7), 300 have no time zone" in done.stderr
    )
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and all(
        "match no polled store" in line and "scientific notation" in line for line in warnings
    )
    # The sample itself matches: a note, no warning.
    clean = subprocess.run(
        [STOREMON, "report", "--data-dir", str(SAMPLE), "--out", str(tmp_path / "c.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert clean.returncode == 0 and "warning:" not in clean.stderr and "note: " in clean.stderr


def test_files_under_other_names_and_a_poll_file_split_in_two(tmp_path):
    polls = SAMPLE / "store_status.csv.gz"
    import gzip

    lines = gzip.decompress(polls.read_bytes()).decode().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    (tmp_path / "polls-part1.csv").write_text(header + "".join(rows[: len(rows) // 2]))
    (tmp_path / "polls-part2.csv").write_text(header + "".join(rows[len(rows) // 2 :]))
    (tmp_path / "Menu hours (copy).csv").write_bytes((SAMPLE / "business_hours.csv").read_bytes())
    (tmp_path / "zones export.csv").write_bytes((SAMPLE / "timezones.csv").read_bytes())
    split = subprocess.run(
        [
            STOREMON,
            "report",
            "--polls",
            str(tmp_path / "polls-part1.csv"),
            str(tmp_path / "polls-part2.csv"),
            "--hours",
            str(tmp_path / "Menu hours (copy).csv"),
            "--timezones",
            str(tmp_path / "zones export.csv"),
            "--out",
            str(tmp_path / "split.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert split.returncode == 0, split.stderr
    whole = subprocess.run(
        [STOREMON, "report", "--data-dir", str(SAMPLE), "--out", str(tmp_path / "whole.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert whole.returncode == 0 and (tmp_path / "split.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    partial = subprocess.run(
        [STOREMON, "report", "--polls", str(tmp_path / "polls-part1.csv")], capture_output=True, text=True, timeout=60
    )
    assert partial.returncode == 1 and partial.stderr.count("\n") == 1 and "name all three" in partial.stderr
