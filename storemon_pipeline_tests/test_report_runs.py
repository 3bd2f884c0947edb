"""Pieces of serving that need no running Dagster: report ids, atomic report files, the API's contract."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storemon_pipeline.serving.api import OPENAPI, create_app
from storemon_pipeline.serving.report_runs import InvalidReportId, ReportRuns, parse_report_id


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


@given(st.text())
def test_no_accepted_id_can_leave_the_reports_folder(text):
    try:
        report_id = parse_report_id(text)
    except InvalidReportId:
        return
    assert set(report_id) <= set("0123456789abcdef-")


def test_the_openapi_description_covers_exactly_the_two_endpoints(tmp_path):
    app = create_app(ReportRuns("127.0.0.1", 1, tmp_path))
    documented = {(path, method.upper()) for path, operations in OPENAPI["paths"].items() for method in operations}
    served = {(route.path, method) for route in app.routes for method in route.methods if method != "HEAD"}
    assert documented == served - {("/health", "GET"), ("/openapi.json", "GET")}


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
