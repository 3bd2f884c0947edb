"""Pieces of serving that need no running Dagster: report ids, atomic report files, the API's contract."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storemon_pipeline.core.settings import report_path
from storemon_pipeline.serving.api import public
from storemon_pipeline.serving.report_runs import InvalidReportId, parse_report_id


@given(st.uuids())
def test_any_run_id_is_a_report_id_in_canonical_form(run_id):
    assert parse_report_id(str(run_id).upper()) == str(run_id)
    assert parse_report_id(f" {run_id}\n") == str(run_id)


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "abc", "../../etc/passwd", f"{uuid.uuid4()}/../x", f"{uuid.uuid4()}.csv", str(uuid.uuid4().hex)],
)
def test_anything_else_is_refused(text):
    with pytest.raises(InvalidReportId):
        parse_report_id(text)


# Texts near real ids (a run id with something around it) besides any text: most are refused,
# some are accepted, and what is accepted must stay a file name inside the reports folder.
_NEAR_IDS = st.builds(
    lambda run_id, upper, before, after: before + (str(run_id).upper() if upper else str(run_id)) + after,
    st.uuids(),
    st.booleans(),
    st.sampled_from(["", " ", "\n", "../", "/", "x", "%2e%2e/"]),
    st.sampled_from(["", " ", "\t", "/..", ".csv", "/../../etc/passwd", "\x00"]),
)


@given(st.one_of(_NEAR_IDS, st.text()))
def test_no_accepted_id_can_leave_the_reports_folder(text):
    folder = Path("/srv/reports")
    try:
        report_id = parse_report_id(text)
    except InvalidReportId:
        return
    assert str(uuid.UUID(report_id)) == report_id  # exactly a canonical run id
    path = report_path(folder, report_id)
    assert path.parent == folder and os.path.normpath(path) == str(path)


def test_accepted_ids_are_exactly_the_run_ids_with_space_or_case_around_them():
    run_id = str(uuid.uuid4())
    assert [parse_report_id(text) for text in (run_id, run_id.upper(), f" {run_id}\n")] == [run_id] * 3
    for text in (f"../{run_id}", f"{run_id}/..", f"{run_id}.csv", f"/{run_id}", run_id + "\x00"):
        with pytest.raises(InvalidReportId):
            parse_report_id(text)


def test_errors_shown_to_clients_name_no_server_path():
    message = (
        "store_report: ReportError: no polls have been ingested: /srv/storemon/home/storemon.duckdb does not exist yet"
    )
    assert (
        public(message) == "store_report: ReportError: no polls have been ingested: storemon.duckdb does not exist yet"
    )
    assert public("see http://127.0.0.1:3000/graphql") == "see http://127.0.0.1:3000/graphql"


WRITER = """
import sys, duckdb
from storemon_pipeline.core.db import configure, write_query
conn = configure(duckdb.connect())
write_query(conn, "SELECT range AS n, repeat('x', 40) AS pad FROM range(200000000)", sys.argv[1])
"""


def test_a_killed_writer_never_leaves_a_partial_report_visible(tmp_path):
    target = tmp_path / "reports" / f"{uuid.uuid4()}.csv"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)])
    try:
        deadline = time.monotonic() + 120
        partial = []
        while time.monotonic() < deadline and not any(p.stat().st_size > 1_000_000 for p in partial):
            partial = list(target.parent.glob(f".{target.name}.*.tmp")) if target.parent.exists() else []
            assert writer.poll() is None, "the writer finished before it could be killed"
            time.sleep(0.05)
        assert partial, "the writer never started writing"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert not target.exists()
    # What is left is the hidden temp file, a name no reader looks for (ids are UUIDs).
    assert [p.name for p in target.parent.iterdir()] == [partial[0].name]
