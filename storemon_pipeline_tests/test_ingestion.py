"""Ingestion of the three sources: Dagster runs, idempotence, increments, bad input, crashes."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import duckdb
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from storemon_pipeline.core import ingest, report, sources
from storemon_pipeline.core.settings import Settings
from storemon_pipeline.core.warehouse import WarehouseError, open_warehouse
from storemon_pipeline_tests.conftest import (
    HOURS_HEADER,
    POLLS_HEADER,
    POLLS_WITH_IDS,
    SHARED_DATA,
    ZONES_HEADER,
    csv_text,
    make_settings,
    materialization,
    materialize_ingestion,
    requires_shared_data,
    table,
    write_text,
)

CURRENT = "retired_load IS NULL"  # the current version of hours and zones


def rejected(settings: Settings, source: str) -> list[tuple]:
    return table(settings, f"SELECT line_number, reason FROM {{wh}}.rejected_rows WHERE source = '{source}' ORDER BY 1")


def ingest_dir(settings: Settings, source_dir=None) -> ingest.LoadOutcome:
    return ingest.ingest(open_warehouse(settings), source_dir or settings.source_dir, progress=lambda message: None)


def error_chain(error) -> str:
    """The messages of a Dagster error and of its causes."""
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return " ".join(messages)


def poll_rows(n_start: int, n: int, store: str = "7") -> list[str]:
    return [
        f"{store},active,2023-01-25 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.5 UTC"
        for i in range(n_start, n_start + n)
    ]


# --- the Dagster path ---------------------------------------------------------------------


def test_ingest_assets_materialize_into_the_warehouse(settings):
    result = materialize_ingestion(settings)
    assert result.success
    assert table(
        settings, "SELECT store_id, status, timestamp_utc::VARCHAR FROM " + POLLS_WITH_IDS + " ORDER BY 1, 3"
    ) == [
        ("1", "active", "2023-01-24 09:06:42.605777"),
        ("1", "inactive", "2023-01-24 10:07:00.12"),
        ("2", "active", "2023-01-24 09:30:00"),
    ]
    assert table(
        settings, "SELECT store_id, day_of_week, start_time_local::VARCHAR FROM {wh}.raw_business_hours ORDER BY 2"
    ) == [
        ("1", 0, "09:00:00"),
        ("1", 1, "09:00:00"),
    ]
    assert table(
        settings, f"SELECT store_id, timezone_str FROM {{wh}}.raw_store_timezones WHERE {CURRENT} ORDER BY 1"
    ) == [("1", "America/New_York"), ("2", "Asia/Kolkata")]
    polls = materialization(result, "raw_store_polls")
    assert polls.metadata["rows_added"].value == 3
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["no_duplicate_poll_keys"] and checks["no_rejected_rows"]
    # The sample is from 2023: the freshness check warns, it does not fail the run.
    assert checks["newest_poll_is_recent"] is False


def test_reingesting_the_same_file_adds_nothing(settings):
    materialize_ingestion(settings)
    second = materialize_ingestion(settings)
    assert materialization(second, "raw_store_polls").metadata["rows_added"].value == 0
    assert table(settings, "SELECT count(*) FROM {wh}.raw_store_polls") == [(3,)]


def test_an_overlapping_file_appends_only_new_rows(settings):
    materialize_ingestion(settings)
    write_text(
        settings.source_dir / "store_status.csv",
        csv_text(POLLS_HEADER, ["2,active,2023-01-24 09:30:00 UTC", "2,inactive,2023-01-24 11:00:00 UTC"]),
    )
    result = materialize_ingestion(settings)
    assert materialization(result, "raw_store_polls").metadata["rows_added"].value == 1
    assert table(settings, "SELECT count(*) FROM {wh}.raw_store_polls") == [(4,)]


def _as_schema_2(settings: Settings) -> None:
    """Put a warehouse's polls back as storemon wrote them before store keys: keyed by the
    store id (in Postgres with the store-first key and a time index of older versions)."""
    statements = [
        "CREATE TABLE {wh}.polls_by_id AS SELECT k.store_id, p.timestamp_utc, p.status, p.load_id, "
        "p.inactive_from_load FROM {wh}.raw_store_polls p JOIN {wh}.store_keys k USING (store_key)",
        "DROP TABLE {wh}.raw_store_polls",
        "DROP TABLE {wh}.store_keys",
        "ALTER TABLE {wh}.polls_by_id RENAME TO raw_store_polls",
        "UPDATE {wh}.schema_version SET version = 2",
    ]
    if settings.embedded:
        with duckdb.connect(str(settings.database)) as conn:
            for sql in statements:
                conn.execute(sql.replace("{wh}", "main"))
        return
    import psycopg2

    with psycopg2.connect(settings.warehouse) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql.replace("{wh}", "storemon"))
        cur.execute(
            "ALTER TABLE storemon.raw_store_polls ADD PRIMARY KEY (store_id, timestamp_utc); "
            "CREATE INDEX raw_store_polls_time ON storemon.raw_store_polls (timestamp_utc)"
        )


def test_a_warehouse_whose_polls_are_keyed_by_store_id_is_moved_to_store_keys_by_its_next_load(settings):
    ingest_dir(settings)
    polls = "SELECT store_id, timestamp_utc, status, load_id FROM " + POLLS_WITH_IDS + " ORDER BY 1, 2"
    before = table(settings, polls)
    _as_schema_2(settings)
    # Until a load upgrades it, a report says what to do, in one line.
    with pytest.raises(
        WarehouseError, match="older storemon \\(polls keyed by store id\\); its next ingest upgrades it"
    ):
        open_warehouse(settings).pin_snapshot()
    write_text(
        settings.source_dir / "store_status.csv",
        csv_text(POLLS_HEADER, ["2,active,2023-01-24 09:30:00 UTC", "2,inactive,2023-01-24 11:00:00 UTC"]),
    )
    assert ingest_dir(settings).results["store_status"].rows_added == 1
    after = table(settings, polls)
    assert [row for row in after if row[3] == 1] == before and len(after) == len(before) + 1
    assert table(settings, "SELECT version FROM {wh}.schema_version") == [(3,)]
    [(stores,)] = table(settings, "SELECT count(DISTINCT store_id) FROM " + POLLS_WITH_IDS)
    assert table(
        settings, "SELECT count(*), count(DISTINCT store_key), count(DISTINCT store_id) FROM {wh}.store_keys"
    ) == [(stores, stores, stores)]
    if not settings.embedded:
        import psycopg2

        with psycopg2.connect(settings.warehouse) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = 'storemon.raw_store_polls'::regclass"
            )
            [(name, definition)] = cur.fetchall()
            assert name == "storemon.raw_store_polls_pkey" and "(timestamp_utc, store_key)" in definition
    open_warehouse(settings).pin_snapshot()  # (reports can be made again)


def test_a_grown_file_is_read_from_where_the_last_run_stopped(settings):
    folder = settings.source_dir
    write_text(folder / "store_status.csv", csv_text(POLLS_HEADER, poll_rows(0, 5000)))
    first = ingest_dir(settings).results["store_status"]
    assert (first.mode, first.rows_added) == ("full", 5000)
    with open(folder / "store_status.csv", "a") as f:
        f.write("\n".join(poll_rows(5000, 1000)) + "\n")
    second = ingest_dir(settings).results["store_status"]
    assert (second.mode, second.rows_read, second.rows_added) == ("incremental", 1000, 1000)
    # A bad row in the increment is reported with its line number in the whole file.
    with open(folder / "store_status.csv", "a") as f:
        f.write("7,bogus,2023-01-25 23:00:00 UTC\n")
    third = ingest_dir(settings).results["store_status"]
    assert (third.mode, third.rows_read, third.rows_rejected) == ("incremental", 1, 1)
    assert table(settings, "SELECT line_number FROM {wh}.rejected_rows") == [(6002,)]
    # A rewritten file (not just grown) is read whole again, still adding nothing twice.
    write_text(folder / "store_status.csv", csv_text(POLLS_HEADER, poll_rows(100, 6000)))
    fourth = ingest_dir(settings).results["store_status"]
    assert (fourth.mode, fourth.rows_added) == ("full", 100)
    assert table(settings, "SELECT count(*) FROM {wh}.raw_store_polls") == [(6100,)]
    # Every load has its id on the rows it added.
    assert table(settings, "SELECT load_id, count(*) FROM {wh}.raw_store_polls GROUP BY 1 ORDER BY 1") == [
        (1, 5000),
        (2, 1000),
        (4, 100),
    ]


# --- bad rows: rejected with line and reason, good rows kept -------------------------------


def test_bad_polls_are_rejected_and_good_ones_kept(settings):
    write_text(
        settings.source_dir / "store_status.csv",
        csv_text(
            POLLS_HEADER,
            [
                "1,active,2023-01-24 09:00:00 UTC",
                "1,offline,2023-01-24 10:00:00 UTC",  # bad status
                "1,ACTIVE,2023-01-24 11:00:00.25 UTC",  # case-insensitive
                "1,active,yesterday",  # bad timestamp
                ",active,2023-01-24 12:00:00 UTC",  # no store
                "1,active,2023-01-24 13:00:00 UTC,extra",  # too many fields
                "1,active,2999-01-01 00:00:00 UTC",  # from the future
                "1,active,2023-01-24 14:00:00+05 UTC",  # an offset and UTC: which one?
            ],
        ),
    )
    result = materialize_ingestion(settings)
    assert result.success
    assert table(settings, "SELECT timestamp_utc::VARCHAR, status FROM {wh}.raw_store_polls ORDER BY 1") == [
        ("2023-01-24 09:00:00", "active"),
        ("2023-01-24 11:00:00.25", "active"),
    ]
    reasons = rejected(settings, "store_status")
    assert [line for line, _ in reasons] == [3, 5, 6, 7, 8, 9]
    assert "status is not active or inactive (got 'offline')" in reasons[0][1]
    assert "timestamp_utc is not a timestamp" in reasons[1][1] and "'yesterday'" in reasons[1][1]
    assert "store_id is empty" in reasons[2][1]
    assert "expected 3 fields, saw 4" in reasons[3][1]
    assert reasons[4][1] == "timestamp_utc is more than 10 minutes in the future (got '2999-01-01 00:00:00 UTC')"
    assert "timestamp_utc is not a timestamp" in reasons[5][1]
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    warn = checks[("raw_store_polls", "no_rejected_rows")]
    assert not warn.passed and warn.severity.value == "WARN"
    assert warn.metadata["rejected_rows"].value == 6


def test_bad_hours_and_zones_are_rejected_and_good_ones_kept(settings):
    write_text(
        settings.source_dir / "business_hours.csv",
        csv_text(
            HOURS_HEADER,
            [
                "1,0,09:00:00,17:00:00",
                "1,7,09:00:00,17:00:00",
                "1,2,9am,17:00:00",
                "1,3,10:00,24:30",
                "1,4,10:00,11:00",
            ],
        ),
    )
    write_text(
        settings.source_dir / "timezones.csv", csv_text(ZONES_HEADER, ["1,America/New_York", "2,Mars/Olympus_Mons"])
    )
    assert materialize_ingestion(settings).success
    assert table(settings, f"SELECT day_of_week FROM {{wh}}.raw_business_hours WHERE {CURRENT} ORDER BY 1") == [
        (0,),
        (4,),
    ]
    hours = rejected(settings, "business_hours")
    assert [line for line, _ in hours] == [3, 4, 5]
    assert "day_of_week is not an integer 0-6" in hours[0][1]
    assert "start_time_local is not a time HH:MM[:SS] (got '9am')" in hours[1][1]
    assert "end_time_local is not a time" in hours[2][1]
    assert table(settings, f"SELECT store_id, timezone_str FROM {{wh}}.raw_store_timezones WHERE {CURRENT}") == [
        ("1", "America/New_York")
    ]
    assert rejected(settings, "timezones") == [
        (3, "timezone_str is not a known IANA time zone (got 'Mars/Olympus_Mons')")
    ]


@pytest.mark.parametrize("file_order", ["time", "reversed"])
def test_polls_are_stored_in_time_order_whatever_order_their_file_has(settings, monkeypatch, file_order):
    # Blocks of 4 lines here: a reversed file's blocks run backwards in time, and only a file
    # whose blocks come in time order is stored as it comes.
    monkeypatch.setattr(ingest, "TIME_ORDER_BLOCK_ROWS", 4)
    rows = [
        f"{store},active,2023-01-25 {hour:02d}:{minute:02d}:00 UTC"
        for hour in range(6)
        for store, minute in (("1", 5), ("2", 10))
    ]
    write_text(
        settings.source_dir / "store_status.csv", csv_text(POLLS_HEADER, rows if file_order == "time" else rows[::-1])
    )
    warehouse = open_warehouse(settings)
    staged = ingest.stage(settings.source_dir, warehouse.read_progress(), progress=lambda message: None)
    try:
        assert staged.polls_in_time_order == (file_order == "time")
        warehouse.commit_load(staged, None)
    finally:
        staged.close()
    physical_order = "rowid" if settings.warehouse == "duckdb" else "ctid"
    stored = [
        row[0] for row in table(settings, f"SELECT timestamp_utc FROM {{wh}}.raw_store_polls ORDER BY {physical_order}")
    ]
    assert len(stored) == len(rows) and stored == sorted(stored)


def test_duplicated_and_conflicting_rows(settings):
    write_text(
        settings.source_dir / "store_status.csv",
        csv_text(
            POLLS_HEADER,
            [
                "1,active,2023-01-24 09:00:00 UTC",
                "1,active,2023-01-24 09:00:00 UTC",  # exact duplicate: one poll
                "1,active,2023-01-24 10:00:00 UTC",
                "1,inactive,2023-01-24 10:00:00 UTC",  # conflicting: one inactive poll
            ],
        ),
    )
    write_text(
        settings.source_dir / "timezones.csv",
        csv_text(ZONES_HEADER, ["1,America/New_York", "1,America/New_York", "2,Asia/Tokyo", "2,Europe/Paris"]),
    )
    result = materialize_ingestion(settings)
    assert table(settings, "SELECT timestamp_utc::VARCHAR, status FROM {wh}.raw_store_polls ORDER BY 1") == [
        ("2023-01-24 09:00:00", "active"),
        ("2023-01-24 10:00:00", "inactive"),
    ]
    meta = materialization(result, "raw_store_polls").metadata
    assert (meta["duplicate_rows"].value, meta["conflicting_duplicate_rows"].value) == (1, 2)
    assert table(
        settings, f"SELECT store_id, timezone_str FROM {{wh}}.raw_store_timezones WHERE {CURRENT} ORDER BY 1"
    ) == [("1", "America/New_York"), ("2", "Asia/Tokyo")]
    assert rejected(settings, "timezones") == [
        (5, "timezone_str 'Europe/Paris' conflicts with line 4 for the same store; line 4 was kept")
    ]
    # A later file saying inactive for a key stored as active turns it inactive (rule: inactive
    # wins) from that load on; the earlier load's snapshot still sees it active.
    write_text(settings.source_dir / "store_status.csv", csv_text(POLLS_HEADER, ["1,inactive,2023-01-24 09:00:00 UTC"]))
    materialize_ingestion(settings)
    key = "{wh}.raw_store_polls WHERE timestamp_utc = '2023-01-24 09:00:00'"
    assert table(settings, f"SELECT status, load_id, inactive_from_load FROM {key}") == [("active", 1, 2)]
    statuses = {}
    for load_id in (1, 2):
        with report.ReportComputation(open_warehouse(settings), load_id=load_id) as run:
            statuses[load_id] = run.value("SELECT status FROM report_polls WHERE timestamp_utc = '2023-01-24 09:00:00'")
    assert statuses == {1: "active", 2: "inactive"}


def test_bom_crlf_quotes_and_column_order(settings):
    write_text(
        settings.source_dir / "store_status.csv",
        csv_text(
            '"timestamp_utc","store_id","status"',
            ['"2023-01-24 09:00:00.123 UTC","1","active"', '"2023-01-24 10:00:00 UTC", 1 ,inactive'],
        ),
        newline="\r\n",
        bom=True,
    )
    assert materialize_ingestion(settings).success
    assert table(
        settings, "SELECT store_id, timestamp_utc::VARCHAR, status FROM " + POLLS_WITH_IDS + " ORDER BY 2"
    ) == [
        ("1", "2023-01-24 09:00:00.123", "active"),
        ("1", "2023-01-24 10:00:00", "inactive"),
    ]
    assert rejected(settings, "store_status") == []


def test_the_2025_format_and_original_file_names(tmp_path, mode, request):
    folder = tmp_path / "src"
    uuid = "0c6f8a6e-38f0-4a53-8b2b-7d0a7a2f3a11"
    write_text(folder / "store status.csv.gz", csv_text(POLLS_HEADER, [f"{uuid},active,2024-10-07T09:43:08.523+00:00"]))
    write_text(
        folder / "Menu hours.csv",
        csv_text("store_id,day,start_time_local,end_time_local", ["1234567890123456789,6,10:00:00,02:00:00"]),
    )
    write_text(
        folder / "bq-results-20230125-202210-1674678181880.csv", csv_text(ZONES_HEADER, [f"{uuid},Europe/Berlin"])
    )
    settings = make_settings(
        tmp_path / "home", folder, request.getfixturevalue("postgres_url") if mode == "postgres" else "duckdb"
    )
    assert ingest_dir(settings).errors == []
    assert table(settings, "SELECT store_id, timestamp_utc::VARCHAR FROM " + POLLS_WITH_IDS) == [
        (uuid, "2024-10-07 09:43:08.523")
    ]
    # Ids are text: 19 digits survive exactly, never as floats.
    assert table(settings, "SELECT store_id, day_of_week FROM {wh}.raw_business_hours") == [("1234567890123456789", 6)]
    assert table(settings, "SELECT timezone_str FROM {wh}.raw_store_timezones") == [("Europe/Berlin",)]


# --- whole-file errors: the run fails, naming the file, and the old data stays ------------


@pytest.mark.parametrize(
    "file_name, content, message",
    [
        ("store_status.csv", "store_id,timestamp_utc\n1,2023-01-24 09:00:00 UTC\n", "missing column(s) status"),
        ("store_status.csv", "", "the file is empty"),
        ("store_status.csv", POLLS_HEADER + "\n", "has a header but no data rows"),
        (
            "business_hours.csv",
            "store_id,weekday,start_time_local,end_time_local\n1,0,09:00,10:00\n",
            "missing column(s) dayOfWeek or day",
        ),
        ("timezones.csv", "", "the file is empty"),
    ],
)
def test_a_bad_file_fails_the_run_and_keeps_previous_data(settings, file_name, content, message):
    materialize_ingestion(settings)
    before = table(
        settings,
        "SELECT (SELECT count(*) FROM {wh}.raw_store_polls), (SELECT count(*) FROM {wh}.raw_business_hours), (SELECT count(*) FROM {wh}.raw_store_timezones)",
    )
    write_text(settings.source_dir / file_name, content)
    result = materialize_ingestion(settings, raise_on_error=False)
    assert not result.success
    errors = " ".join(error_chain(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)
    assert str(settings.source_dir / file_name) in errors and message in errors
    assert "expected" in errors  # names the expected columns
    after = table(
        settings,
        "SELECT (SELECT count(*) FROM {wh}.raw_store_polls), (SELECT count(*) FROM {wh}.raw_business_hours), (SELECT count(*) FROM {wh}.raw_store_timezones)",
    )
    assert after == before


def test_a_missing_file_names_the_folder_and_the_accepted_names(settings):
    (settings.source_dir / "timezones.csv").unlink()
    with pytest.raises(sources.SourceError, match=r"no timezones file in .*timezones\.csv\[\.gz\], bq-results-\*\.csv"):
        ingest.source_files(sources.TIMEZONES, settings.source_dir, None)
    zones = ingest_dir(settings).results["timezones"]
    assert "no timezones file in" in zones.error and zones.rows_added == 0


def test_a_crash_mid_load_leaves_the_warehouse_as_it_was(settings):
    """kill -9 of the writer inside the load's transaction: all of the load or none of it."""
    materialize_ingestion(settings)
    snapshot = (
        "SELECT (SELECT count(*) FROM {wh}.raw_store_polls), (SELECT count(*) FROM {wh}.raw_business_hours), "
        "(SELECT count(*) FROM {wh}.raw_store_timezones), (SELECT count(*) FROM {wh}.loads), "
        "(SELECT count(*) FROM {wh}.rejected_rows), (SELECT max(byte_offset) FROM {wh}.source_progress)"
    )
    before = table(settings, snapshot)
    polls_before = table(settings, "SELECT store_id, timestamp_utc, status FROM " + POLLS_WITH_IDS + " ORDER BY 1, 2")
    # New polls, new hours, a rejected row: every source has something to write.
    write_text(settings.source_dir / "store_status.csv", csv_text(POLLS_HEADER, [*poll_rows(0, 2000), "x,bogus,1"]))
    write_text(settings.source_dir / "business_hours.csv", csv_text(HOURS_HEADER, ["1,2,08:00,12:00"]))
    # The process dies (no exception handling, no rollback) after the load's statements ran,
    # before the transaction commits.
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from storemon_pipeline.core import ingest, warehouse
        from storemon_pipeline.core.settings import Settings
        def die(*args, **kwargs):
            os.kill(os.getpid(), 9)
        warehouse._record_counts = die
        settings = Settings(home=Path({str(settings.home)!r}), source_dir=Path({str(settings.source_dir)!r}),
                            warehouse={settings.warehouse!r})
        ingest.ingest(warehouse.open_warehouse(settings), settings.source_dir)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert table(settings, snapshot) == before
    assert (
        table(settings, "SELECT store_id, timestamp_utc, status FROM " + POLLS_WITH_IDS + " ORDER BY 1, 2")
        == polls_before
    )
    # The next load takes it all.
    outcome = ingest_dir(settings)
    assert outcome.results["store_status"].rows_added == 2000
    assert table(settings, f"SELECT day_of_week FROM {{wh}}.raw_business_hours WHERE {CURRENT}") == [(2,)]


# --- the public dataset -------------------------------------------------------------------


@requires_shared_data
def test_the_public_hours_and_zones_load_without_rejections(tmp_path):
    settings = make_settings(tmp_path / "home", SHARED_DATA)
    results = ingest_dir(settings).results
    hours, zones, polls = results["business_hours"], results["timezones"], results["store_status"]
    assert hours.rows_read == 86_198 and hours.rows_rejected == 0
    assert table(settings, "SELECT count(DISTINCT store_id) FROM {wh}.raw_business_hours") == [(11_116,)]
    assert zones.rows_read == 13_559 and zones.rows_rejected == 0 and zones.total_rows == 13_559
    assert polls.rows_read == 5_032 and polls.rows_rejected == 0
    # Counted again from the file with the csv module: one poll per (store, instant).
    import csv
    import gzip
    from collections import Counter
    from datetime import datetime

    with gzip.open(SHARED_DATA / "store_status.csv.gz", "rt") as f:
        rows = [
            (r["store_id"], datetime.fromisoformat(r["timestamp_utc"].removesuffix(" UTC")), r["status"])
            for r in csv.DictReader(f)
        ]
    copies = Counter((store, instant) for store, instant, _ in rows)
    statuses = {}
    for store, instant, status in rows:
        statuses.setdefault((store, instant), set()).add(status)
    conflicting = {key for key, seen in statuses.items() if len(seen) > 1}
    assert polls.rows_added == len(copies)
    assert polls.conflicting_rows == sum(copies[key] for key in conflicting)
    assert polls.duplicate_rows == sum(n - 1 for key, n in copies.items() if key not in conflicting)


# --- the line reader: every line keeps its number; a broken line costs only itself ----------

# Lines built so that what each must become is known by construction (the oracle): a row of
# two fields (each plain or wholly quoted), a blank line, or a line that must be rejected.
# (A time-zone row, whose checked table keeps both fields as text.)
_PLAIN = st.text(alphabet="abcXYZ019:.- Zü€", max_size=10).map(str.strip).filter(lambda t: t and t[0] not in "=+-@")
_QUOTED_TEXT = st.text(alphabet='ab, "', min_size=1, max_size=6).filter(lambda t: t.strip(" ,"))


@st.composite
def _line(draw):
    kind = draw(st.sampled_from(["row", "quoted_row", "blank", "short", "long", "unterminated", "not_utf8"]))
    values = [draw(_PLAIN) for _ in range(2)]
    if kind == "row":
        return kind, ",".join(values).encode(), values
    if kind == "quoted_row":
        quoted = draw(st.sampled_from([0, 1]))
        text = draw(_QUOTED_TEXT)
        fields = list(values)
        fields[quoted], values[quoted] = '"' + text.replace('"', '""') + '"', text.strip()
        return kind, ",".join(fields).encode(), values
    if kind == "blank":
        return kind, draw(st.sampled_from([b"", b"   ", b",,", b" , ,"])), None
    if kind == "short":
        return kind, values[0].encode(), None
    if kind == "long":
        return kind, ",".join([*values, "extra"]).encode(), None
    if kind == "unterminated":
        return kind, f'{values[0]},"{values[1]}'.encode(), None
    return kind, values[0].encode() + b"\xff\xfe," + values[1].encode(), None


@hypothesis_settings(max_examples=120, deadline=None)
@given(
    lines=st.lists(_line(), min_size=1, max_size=25),
    crlf=st.booleans(),
    gzip_file=st.booleans(),
    final_newline=st.booleans(),
)
def test_every_line_is_read_with_its_number_and_a_broken_one_costs_only_itself(
    tmp_path_factory, lines, crlf, gzip_file, final_newline
):
    import gzip

    import duckdb

    from storemon_pipeline.core import validation
    from storemon_pipeline.core.db import configure

    folder = tmp_path_factory.mktemp("lines")
    end = b"\r\n" if crlf else b"\n"
    data = end.join([b"store_id,timezone_str", *(raw for _, raw, _ in lines)]) + (end if final_newline else b"")
    path = folder / ("timezones.csv.gz" if gzip_file else "timezones.csv")
    path.write_bytes(gzip.compress(data) if gzip_file else data)
    # A plain file's last line with no newline yet is still being written: it waits.
    # (An empty last line with no newline is no line at all.)
    counted = lines if final_newline or (gzip_file and lines[-1][1]) else lines[:-1]
    with configure(duckdb.connect()) as conn:
        conn.execute(ingest.STAGE_SQL)
        header = sources.read_header(path, sources.TIMEZONES)
        read = sources.read_lines(conn, path, header, header.data_offset, 2, "zones_lines")
        validation.check_lines(conn, sources.TIMEZONES, header, read.table, "checked_zones", str(path))
        # The rows as split, before the zone rules (these values are not time zones).
        rows = conn.execute(
            "SELECT line_number, store_id, timezone_str FROM checked_zones WHERE malformed IS NULL ORDER BY 1"
        ).fetchall()
        broken = [
            row[0]
            for row in conn.execute(
                "SELECT line_number FROM checked_zones WHERE malformed IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
    expected_rows = [
        (number, *values) for number, (kind, _, values) in enumerate(counted, start=2) if values is not None
    ]
    expected_rejected = [
        number for number, (kind, _, _) in enumerate(counted, start=2) if kind not in ("row", "quoted_row", "blank")
    ]
    assert rows == expected_rows
    assert broken == expected_rejected
    assert read.next_line == 2 + len(counted)


def test_a_damaged_line_is_named_and_the_good_lines_around_it_are_kept(settings):
    big = "x" * 50_000
    lines = [
        b"1,active,2023-01-24 09:00:00 UTC",
        b'2,"active,2023-01-24 09:00:00 UTC',  # unterminated quote
        b"3,active,2023-01-24 09:00:00 UTC",
        b"4\xff\xfe,active,2023-01-24 09:00:00 UTC",  # not UTF-8
        b"5,active,2023-01-24 09:00:00 UTC\r",  # a CR-LF line in an LF file
        b"=cmd|' /C calc'!A0,active,2023-01-24 09:00:00 UTC",  # a formula
        b"7\x01,active,2023-01-24 09:00:00 UTC",  # a control character
        f"{big},active,2023-01-24 09:00:00 UTC".encode(),  # a huge value
        b"9," + b"x" * sources.MAX_LINE_BYTES,  # a line too long to read
        b"10,active,2023-01-24 09:00:00 UTC",
        b"11,active,2023-01-24 10:00",  # half-written: no newline yet
    ]
    (settings.source_dir / "store_status.csv").write_bytes(POLLS_HEADER.encode() + b"\n" + b"\n".join(lines))
    outcome = ingest_dir(settings)
    polls = outcome.results["store_status"]
    assert table(settings, "SELECT store_id FROM " + POLLS_WITH_IDS + " ORDER BY 1") == [
        ("1",),
        ("10",),
        ("3",),
        ("5",),
    ]
    reasons = dict(rejected(settings, "store_status"))
    assert sorted(reasons) == [3, 5, 7, 8, 9, 10]
    assert reasons[3].startswith("malformed CSV line")
    assert reasons[5] == "the line is not valid UTF-8"
    assert "starts with =, +, - or @" in reasons[7] and "holds a control character" in reasons[8]
    assert len(reasons[9]) < 300 and "…" in reasons[9]
    assert reasons[10] == "the line is longer than 1 MiB"
    assert table(settings, "SELECT max(length(raw_values)) FROM {wh}.rejected_rows")[0][0] <= 200
    assert polls.rows_read == 10  # line 12 waits for its newline
    # Once the line is complete, the next load reads it, and only it.
    with open(settings.source_dir / "store_status.csv", "ab") as f:
        f.write(b":00 UTC\n")
    polls = ingest_dir(settings).results["store_status"]
    assert (polls.mode, polls.rows_read, polls.rows_added) == ("incremental", 1, 1)
    assert table(settings, "SELECT timestamp_utc::VARCHAR FROM " + POLLS_WITH_IDS + " WHERE store_id = '11'") == [
        ("2023-01-24 10:00:00",)
    ]


def test_a_truncated_gzip_file_keeps_the_rows_before_the_damage_and_says_where_reading_stopped(settings):
    import gzip

    data = gzip.compress((POLLS_HEADER + "\n" + "\n".join(poll_rows(0, 20_000)) + "\n").encode())
    (settings.source_dir / "store_status.csv").unlink()
    (settings.source_dir / "store_status.csv.gz").write_bytes(data[: len(data) // 2])
    polls = ingest_dir(settings).results["store_status"]
    assert polls.error is None
    [warning] = polls.warnings
    last_line = int(re.search(r"damaged after line ([\d,]+)", warning).group(1).replace(",", ""))
    assert 1_000 < last_line < 20_001
    assert polls.rows_added == last_line - 1  # every complete line before the damage, but the header
    assert table(settings, "SELECT count(*) FROM {wh}.raw_store_polls") == [(last_line - 1,)]


@pytest.mark.parametrize("kind", ["fake gzip", "binary", "folder", "symlink loop", "dangling symlink"])
def test_a_file_that_is_not_a_csv_is_named_as_what_it_is(settings, kind):
    folder = settings.source_dir
    expected = {
        "fake gzip": "not a complete gzip file",
        "binary": "missing column(s)",
        "folder": "is a folder, not a file",
        "symlink loop": "cannot be read",
        "dangling symlink": "leads nowhere",
    }[kind]
    (folder / "timezones.csv").unlink()
    if kind == "fake gzip":
        (folder / "timezones.csv.gz").write_bytes(b"store_id,timezone_str\n1,UTC\n")
    elif kind == "binary":
        (folder / "timezones.csv").write_bytes(bytes(range(256)) * 40)
    elif kind == "folder":
        (folder / "timezones.csv").mkdir()
    elif kind == "symlink loop":
        (folder / "timezones.csv").symlink_to(folder / "timezones.csv")
    else:
        (folder / "timezones.csv").symlink_to(folder / "gone.csv")
    zones = ingest_dir(settings).results["timezones"]
    assert zones.error is not None and "timezones.csv" in zones.error and expected in zones.error, zones.error
    assert "\n" not in zones.error and len(zones.error) < 400


def test_a_store_whose_every_hours_row_was_rejected_is_named(settings):
    write_text(
        settings.source_dir / "business_hours.csv",
        csv_text(HOURS_HEADER, ["1,0,09:00,17:00", "2,0,9am,5pm", "2,1,nine,five"]),
    )
    hours = ingest_dir(settings).results["business_hours"]
    assert hours.rows_rejected == 2
    assert hours.warnings == [
        "1 store(s) lost every business-hours row to rejection and count as open 24x7 until their rows are fixed: 2"
    ]


def test_duckdb_memory_limit_comes_from_the_environment(monkeypatch):
    import duckdb

    from storemon_pipeline.core.db import configure, fetch_value

    monkeypatch.setenv("STOREMON_DUCKDB_MEMORY_LIMIT", "1GB")
    with configure(duckdb.connect()) as conn:
        assert fetch_value(conn, "SELECT current_setting('memory_limit')") == "953.6 MiB"


def test_a_poll_slightly_ahead_of_this_clock_is_kept_and_one_from_the_future_rejected(settings):
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    write_text(
        settings.source_dir / "store_status.csv",
        csv_text(
            POLLS_HEADER, [f"a,active,{now + timedelta(minutes=5)} UTC", f"b,active,{now + timedelta(hours=2)} UTC"]
        ),
    )
    ingest_dir(settings)
    assert table(settings, "SELECT store_id FROM " + POLLS_WITH_IDS) == [("a",)]
    [(line, reason)] = rejected(settings, "store_status")
    assert line == 3 and "is more than 10 minutes in the future" in reason


def test_each_load_drops_polls_older_than_the_retention_before_the_newest_poll(settings):
    settings = settings.replace(retention_days=30)
    daily = [f"7,active,2023-03-{day:02d} 12:00:00 UTC" for day in range(1, 32)] + [
        f"7,active,2023-02-{day:02d} 12:00:00 UTC" for day in range(1, 29)
    ]
    write_text(settings.source_dir / "store_status.csv", csv_text(POLLS_HEADER, daily))
    polls = ingest_dir(settings).results["store_status"]
    # The newest poll is 2023-03-31 12:00; the 30 days before it start at 2023-03-01 12:00.
    assert (polls.rows_added, polls.rows_retired) == (59, 28)
    assert table(settings, "SELECT min(timestamp_utc)::VARCHAR, count(*) FROM {wh}.raw_store_polls") == [
        ("2023-03-01 12:00:00", 31)
    ]
    # Without retention (0) nothing is dropped.
    write_text(settings.source_dir / "store_status.csv", csv_text(POLLS_HEADER, ["7,active,2022-01-01 00:00:00 UTC"]))
    kept = ingest.ingest(
        open_warehouse(settings.replace(retention_days=0)), settings.source_dir, progress=lambda m: None
    )
    assert (kept.results["store_status"].rows_added, kept.results["store_status"].rows_retired) == (1, 0)
    assert table(settings, "SELECT count(*) FROM {wh}.raw_store_polls") == [(32,)]


def test_the_duplicate_key_check_sees_a_duplicate_among_the_new_polls_only(settings):
    write_text(settings.source_dir / "store_status.csv", csv_text(POLLS_HEADER, poll_rows(0, 100)))
    ingest_dir(settings)
    write_text(settings.source_dir / "store_status.csv", csv_text(POLLS_HEADER, poll_rows(0, 200)))
    ingest_dir(settings)
    warehouse = open_warehouse(settings)
    assert warehouse.duplicate_poll_keys(since_load=1) == 0
    # A second copy of a key of the second load (as a broken writer would leave) is seen;
    # one of a key only the first load touched is outside the second load's range.
    copy_new = "INSERT INTO {wh}.raw_store_polls SELECT store_key, timestamp_utc, status, 2, NULL FROM {wh}.raw_store_polls WHERE load_id = 2 LIMIT 1"
    copy_old = "INSERT INTO {wh}.raw_store_polls SELECT store_key, timestamp_utc, status, 1, NULL FROM {wh}.raw_store_polls WHERE load_id = 1 AND timestamp_utc = (SELECT min(timestamp_utc) FROM {wh}.raw_store_polls)"
    if not settings.embedded:
        pytest.skip("the Postgres polls table has a primary key: it cannot hold a duplicate")
    import duckdb

    with duckdb.connect(str(settings.database)) as conn:
        conn.execute(copy_old.replace("{wh}.", ""))
    assert warehouse.duplicate_poll_keys(since_load=1) == 0
    with duckdb.connect(str(settings.database)) as conn:
        conn.execute(copy_new.replace("{wh}.", ""))
    assert warehouse.duplicate_poll_keys(since_load=1) == 1
    assert warehouse.duplicate_poll_keys(since_load=0) == 2


def test_the_ingest_asset_reads_explicitly_named_files_from_the_settings(settings, tmp_path):
    from storemon_pipeline.core.settings import settings_from_env

    first, second = tmp_path / "part one.csv", tmp_path / "part two.csv"
    write_text(first, csv_text(POLLS_HEADER, poll_rows(0, 10, store="a")))
    write_text(second, csv_text(POLLS_HEADER, poll_rows(0, 5, store="b")))
    named = settings_from_env({"STOREMON_POLLS": f"{first}:{second}"}).files
    result = materialize_ingestion(settings.replace(source_files=tuple(named.items())))
    assert result.success
    assert table(settings, "SELECT store_id, count(*) FROM " + POLLS_WITH_IDS + " GROUP BY 1 ORDER BY 1") == [
        ("a", 10),
        ("b", 5),
    ]
    assert materialization(result, "raw_store_polls").metadata["source_file"].value == f"{first}, {second}"


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=210),
        st.sampled_from(["", "=1", "+1", "-1", "@x", "a\tb", "a\x7f", "x" * 200, "x" * 201, "123", "é中"]),
    )
)
def test_the_rest_apis_store_id_check_is_ingestions_rule(store_id):
    """One rule, stated for DuckDB (validation.STORE_ID_RULES) and for the REST API
    (report_request.store_id_problem): both say the same of any text."""
    from storemon_pipeline.core.report_request import store_id_problem
    from storemon_pipeline.core.validation import STORE_ID_RULES

    cases = " ".join(f"WHEN {rule.broken} THEN '{rule.problem}'" for rule in STORE_ID_RULES)
    (sql_problem,) = duckdb.execute(f"SELECT CASE {cases} END FROM (SELECT ? AS store_id)", [store_id]).fetchall()[0]
    assert store_id_problem(store_id) == sql_problem
