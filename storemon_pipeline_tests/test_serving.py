"""Serving end to end: real webserver, daemon and REST API on loopback ports, real HTTP.

One server (what `make run` starts) serves the whole module; tests run in file order and
the ones that change the data come last.
"""

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from storemon_pipeline.core import report
from storemon_pipeline.core.settings import Settings, location, report_file_path, report_path, report_record_path
from storemon_pipeline.serving.local_server import (
    STOREMON,
    StoremonServer,
    copy_sample_sources,
    free_port,
    port_is_open,
)

pytestmark = pytest.mark.services

SENSOR = {"storemon/trigger": "sensor"}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def server(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    warehouse = request.getfixturevalue("postgres_server").new_database() if request.param == "postgres" else "duckdb"
    paths = Settings(home=root / "home", source_dir=copy_sample_sources(root / "sources"), warehouse=warehouse)
    if request.param == "postgres":
        # Production's layout: the shared warehouse, and reports in a store reached by URL
        # (through fsspec, as s3://... would be).
        paths = paths.replace(reports_dir_override=location(f"file://{root}/report-store"))
    server = StoremonServer(paths, dagster_port=free_port(), api_port=free_port())
    server.start()
    yield server
    server.stop()
    assert "storemon: stopped" in server.output
    assert not port_is_open(server.dagster_port) and not port_is_open(server.api_port)


def storemon_report(server: StoremonServer, tmp_path: Path, *args: str) -> str:
    out = tmp_path / f"cli-{uuid.uuid4().hex}.csv"
    done = subprocess.run(
        [str(STOREMON), "report", "--data-dir", str(server.paths.source_dir), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out.read_text()


def test_make_run_prints_where_everything_is(server):
    assert f"http://127.0.0.1:{server.dagster_port}" in server.output
    assert f"http://127.0.0.1:{server.api_port}" in server.output
    assert "ingest_job SUCCESS" in server.output
    # ... and, once the sensor's report is done, its id and where to get it.
    deadline = time.monotonic() + 180
    while (found := re.search(r"storemon: first report (\S+): (\S+)", server.output)) is None:
        assert time.monotonic() < deadline, server.output
        time.sleep(1)
    report_id, url = found.groups()
    assert url == f"http://127.0.0.1:{server.api_port}/get_report?report_id={report_id}"
    response = requests.get(url, timeout=60)
    assert response.headers["X-Report-Status"] == "Complete" and response.text.startswith("store_id,")


def test_make_run_on_busy_ports_says_which_and_starts_nothing(server, tmp_path):
    home = tmp_path / "second-home"
    env = {
        **os.environ,
        "STOREMON_HOME": str(home),
        "STOREMON_DAGSTER_PORT": str(server.dagster_port),
        "STOREMON_API_PORT": str(server.api_port),
        "STOREMON_SOURCE_DIR": str(server.paths.source_dir),
    }
    before = len(server.runs({}))
    done = subprocess.run(
        [sys.executable, "-m", "storemon_pipeline.serving.serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"storemon: port {server.dagster_port} on 127.0.0.1 is in use (Address already in use); set STOREMON_DAGSTER_PORT to a free port",
        f"storemon: port {server.api_port} on 127.0.0.1 is in use (Address already in use); set STOREMON_API_PORT to a free port",
    ]
    assert not home.exists() and len(server.runs({})) == before  # nothing written, nothing submitted


def test_rest_as_of_body_and_the_report_list(server, tmp_path):
    as_of = "2023-03-12 09:30:00"
    response = requests.post(f"{server.api}/trigger_report", json={"as_of": as_of}, timeout=60)
    assert response.status_code == 200, response.text
    report_id = response.json()["report_id"]
    assert server.wait_for_report(report_id).text == storemon_report(server, tmp_path, "--as-of", as_of)
    listed = requests.get(f"{server.api}/reports", timeout=60).json()["reports"]
    assert listed[0]["report_id"] == report_id  # newest first
    assert (listed[0]["status"], listed[0]["as_of"], listed[0]["row_count"]) == ("Complete", as_of, 300)
    created = [entry["created"] for entry in listed]
    assert created == sorted(created, reverse=True)
    latest = requests.get(f"{server.api}/reports/latest", timeout=60, allow_redirects=False)
    assert latest.status_code == 307 and latest.headers["location"] == f"/get_report?report_id={report_id}"
    assert requests.get(f"{server.api}/reports/latest", timeout=60).text == server.get_report(report_id).text


def test_rest_report_equals_the_storemon_report_command(server, tmp_path):
    report_id = server.trigger_rest()
    response = server.wait_for_report(report_id)
    assert response.status_code == 200
    assert response.headers["X-Report-Status"] == "Complete"
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"] == f'attachment; filename="report-{report_id}.csv"'
    assert response.text == storemon_report(server, tmp_path)
    assert response.text.count("\n") == 301  # header + the sample's 300 stores
    # The extended report: the same rows with intervals and evidence, as the CLI writes it.
    extended = requests.get(
        f"{server.api}/get_report", params={"report_id": report_id, "format": "extended"}, timeout=60
    )
    assert extended.status_code == 200, extended.text
    assert extended.headers["Content-Disposition"] == f'attachment; filename="report-{report_id}.extended.csv"'
    assert extended.text == storemon_report(server, tmp_path, "--extended")
    header, *rows = extended.text.splitlines()
    assert header.split(",") == report.EXTENDED_COLUMNS and len(rows) == 300
    plain_columns = len(response.text.splitlines()[0].split(","))
    assert [row.split(",")[:plain_columns] for row in rows] == [
        row.split(",") for row in response.text.splitlines()[1:]
    ]
    wrong = requests.get(f"{server.api}/get_report", params={"report_id": report_id, "format": "xml"}, timeout=60)
    assert wrong.status_code == 400 and "format" in wrong.json()["error"]


def test_one_store_of_a_report_with_its_days_and_incidents(server):
    listed = requests.get(f"{server.api}/reports", timeout=60).json()["reports"]
    complete = [entry["report_id"] for entry in listed if entry["status"] == "Complete" and entry["row_count"] == 300]
    report_id = complete[0] if complete else server.trigger_rest()  # (any complete report of the sample)
    rows = list(csv.DictReader(io.StringIO(server.wait_for_report(report_id).text)))
    incidents = list(csv.DictReader(report_file_path(server.paths.reports_dir, report_id, "incidents").open()))
    store_id = incidents[0]["store_id"]  # a store with an incident
    response = requests.get(f"{server.api}/stores/{store_id}", params={"report_id": report_id}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    (row,) = [row for row in rows if row["store_id"] == store_id]
    assert (body["report_id"], body["store_id"]) == (report_id, store_id)
    assert body["report"] == {name: float(value) for name, value in row.items() if name != "store_id"}
    (extended,) = [
        row
        for row in csv.DictReader(report_file_path(server.paths.reports_dir, report_id, "extended").open())
        if row["store_id"] == store_id
    ]
    assert set(body["intervals"]) == {"hour", "day", "week"}
    for window, evidence in body["intervals"].items():
        assert evidence == {
            "uptime_lo": float(extended[f"uptime_last_{window}_lo"]),
            "uptime_hi": float(extended[f"uptime_last_{window}_hi"]),
            "polls": int(extended[f"polls_last_{window}"]),
            "unobserved": float(extended[f"unobserved_last_{window}"]),
        }
        assert evidence["uptime_lo"] <= body["report"][f"uptime_last_{window}"] <= evidence["uptime_hi"]
    assert len(body["daily"]) == 7 and [day["local_date"] for day in body["daily"]] == sorted(
        day["local_date"] for day in body["daily"]
    )
    mine = [incident for incident in incidents if incident["store_id"] == store_id]
    assert [incident["first_inactive_utc"] for incident in body["incidents"]] == [
        incident["first_inactive_utc"] for incident in mine
    ]
    assert sum(incident["business_minutes"] for incident in body["incidents"]) / 60 == pytest.approx(
        float(row["downtime_last_week"]), abs=0.02
    )

    # A store not in the report; a malformed store id; a malformed report id.
    def get(store, rid=report_id):
        return requests.get(f"{server.api}/stores/{store}", params={"report_id": rid}, timeout=60)

    missing = get("123")
    assert missing.status_code == 404 and "not in report" in missing.json()["error"]
    formula = get("=1+1")
    assert formula.status_code == 400 and "formula" in formula.json()["error"]
    assert get(store_id, "not-a-run").status_code == 400

    # A report written by an older version, without the per-store files: a 404 that says so.
    daily = report_file_path(server.paths.reports_dir, report_id, "daily")
    hidden = daily.with_name(daily.name + ".hidden")
    daily.rename(hidden)
    try:
        older = get(store_id)
    finally:
        hidden.rename(daily)
    assert older.status_code == 404 and "older version" in older.json()["error"] and daily.name in older.json()["error"]
    assert get(store_id).status_code == 200


REPORT_METADATA_QUERY = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on MaterializationEvent {
          assetKey { path }
          metadataEntries {
            label
            ... on FloatMetadataEntry { floatValue }
            ... on IntMetadataEntry { intValue }
            ... on TableMetadataEntry { table { records } }
          }
        }
      }
    }
  }
}
"""


def test_the_ui_shows_the_report_s_evidence_in_its_metadata(server):
    """What the Dagster UI shows for a report run (read through the webserver's GraphQL): the
    share of wide week intervals, the incidents and the stores with least evidence, as in the
    run's files."""
    listed = requests.get(f"{server.api}/reports", timeout=60).json()["reports"]
    complete = [entry["report_id"] for entry in listed if entry["status"] == "Complete" and entry["row_count"] == 300]
    report_id = complete[0] if complete else server.trigger_rest()  # (any complete report of the sample)
    assert server.wait_for_report(report_id).status_code == 200
    events = server.graphql()._execute(REPORT_METADATA_QUERY, {"runId": report_id})["logsForRun"]["events"]
    (entries,) = [
        event["metadataEntries"]
        for event in events
        if event["__typename"] == "MaterializationEvent" and event["assetKey"]["path"] == ["store_report"]
    ]
    shown = {entry["label"]: entry for entry in entries}
    extended = list(csv.DictReader(report_file_path(server.paths.reports_dir, report_id, "extended").open()))
    open_week = [row for row in extended if float(row["uptime_last_week"]) + float(row["downtime_last_week"]) > 0]
    wide = [
        row
        for row in open_week
        if float(row["uptime_last_week_hi"]) - float(row["uptime_last_week_lo"])
        > 0.1 * (float(row["uptime_last_week"]) + float(row["downtime_last_week"]))
    ]
    assert shown["wide_week_interval_share"]["floatValue"] == pytest.approx(len(wide) / len(open_week), abs=1e-4)
    incidents = list(csv.DictReader(report_file_path(server.paths.reports_dir, report_id, "incidents").open()))
    assert shown["incidents_last_week"]["intValue"] == len(incidents)
    least = [json.loads(record) for record in shown["least_evidence_last_week"]["table"]["records"]]
    fewest = sorted(int(row["polls_last_week"]) for row in open_week)[: len(least)]
    assert len(least) == 10 and [row["polls_last_week"] for row in least] == fewest


def test_graphql_cli_report_with_as_of_equals_the_storemon_report_command(server, tmp_path):
    as_of = "2023-03-12 09:30:00"
    triggered = server.storemon("trigger-report", "--as-of", as_of)
    assert triggered.returncode == 0, triggered.stderr
    report_id = triggered.stdout.strip()
    uuid.UUID(report_id)
    assert server.wait_for_run(report_id) == "SUCCESS"
    out = tmp_path / "graphql.csv"
    fetched = server.storemon("get-report", report_id, "--out", str(out))
    assert (fetched.returncode, fetched.stdout.strip()) == (0, f"Complete: {out}")
    assert out.read_text() == storemon_report(server, tmp_path, "--as-of", as_of)
    # The same report through REST.
    assert server.get_report(report_id).text == out.read_text()


@contextmanager
def warehouse_held(server: StoremonServer):
    """Hold the warehouse the way a long ingest commit would: a report run then waits."""
    if server.paths.warehouse == "duckdb":
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(600)",
                str(server.paths.database),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "held"
        try:
            yield
        finally:
            holder.kill()
            holder.wait()
    else:
        import psycopg2

        conn = psycopg2.connect(server.paths.warehouse)
        try:
            with conn.cursor() as cur:
                cur.execute("LOCK TABLE storemon.loads IN ACCESS EXCLUSIVE MODE")
            yield
        finally:
            conn.rollback()
            conn.close()


def test_get_report_prints_running_until_the_run_is_done(server):
    server.wait_until_idle()
    with warehouse_held(server):
        report_id = server.storemon("trigger-report").stdout.strip()
        running = server.storemon("get-report", report_id, "--out", "/dev/null")
        assert (running.returncode, running.stdout.strip()) == (3, "Running")
        rest = server.get_report(report_id)
        assert rest.status_code == 200
        body = rest.json()
        assert (body["report_id"], body["status"]) == (report_id, "Running")
        assert body["run_status"] in {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}
        assert set(body) == {"report_id", "status", "run_status"} and rest.headers["X-Report-Status"] == "Running"
    # Released: the waiting report reads its snapshot and completes.
    assert server.wait_for_report(report_id).headers["X-Report-Status"] == "Complete"


def test_ten_triggers_at_once_all_complete_each_computing_its_own_report(server):
    server.wait_until_idle()
    one_seconds, _, [one] = server.trigger_many(1)
    assert one.headers["X-Report-Status"] == "Complete"
    ten_seconds, report_ids, responses = server.trigger_many(10)
    assert len(set(report_ids)) == 10
    assert [response.headers["X-Report-Status"] for response in responses] == ["Complete"] * 10, [
        response.text for response in responses if response.headers["X-Report-Status"] != "Complete"
    ]
    assert {response.text for response in responses} == {one.text}  # same data, same report
    # No run reused another's result: each wrote its own report and history row.
    records = [report.ReportRecord.read(report_record_path(server.paths.reports_dir, rid)) for rid in report_ids]
    assert sorted(record.report_id for record in records) == sorted(report_ids)
    # The ratio is a benchmark figure (make bench), not an assertion: this machine is noisy.
    print(
        f"\n[{server.paths.warehouse.split(':')[0]}] one trigger {one_seconds:.1f} s; ten at once {ten_seconds:.1f} s "
        f"= {ten_seconds / one_seconds:.1f}x"
    )


def test_an_ingest_racing_a_report_both_succeed(server):
    ingest_id = server.graphql().submit_job_execution("ingest_job")
    report_id = server.trigger_rest()
    assert server.wait_for_run(ingest_id) == "SUCCESS"
    assert server.wait_for_report(report_id).headers["X-Report-Status"] == "Complete"


def test_ids_that_are_not_report_runs(server):
    unknown = str(uuid.uuid4())
    response = server.get_report(unknown)
    assert response.status_code == 404 and unknown in response.json()["error"]
    ingest_run = server.runs({"storemon/trigger": "make-run"})[0]["runId"]
    response = server.get_report(ingest_run)
    assert response.status_code == 404 and "ingest_job" in response.json()["error"]
    for malformed in [None, "", "42", "../../etc/passwd", unknown + "/x"]:
        response = server.get_report(malformed)
        assert response.status_code == 400 and response.json()["error"], malformed
    assert server.storemon("get-report", unknown).returncode == 4
    assert server.storemon("get-report", "../../etc/passwd").returncode == 2
    assert server.storemon("trigger-report", "--as-of", "not a time").returncode == 2


def test_health_and_openapi(server):
    import requests

    assert requests.get(f"{server.api}/health", timeout=30).json()["status"] == "ok"
    # (the document's full contract is test_api.py's; here: the served one is the generated one)
    assert set(requests.get(f"{server.api}/openapi.json", timeout=30).json()["paths"]) == {
        "/trigger_report",
        "/get_report",
        "/reports",
        "/reports/latest",
        "/stores/{store_id}",
        "/health",
        "/openapi.json",
        "/docs",
    }


def test_a_failed_run_reports_failed_with_the_error(server):
    triggered = server.storemon("trigger-report", "--snapshot", "999")  # no such load
    assert triggered.returncode == 0, triggered.stderr
    report_id = triggered.stdout.strip()
    response = server.wait_for_report(report_id)
    body = response.json()
    assert (response.status_code, body["status"], body["run_status"]) == (200, "Failed", "FAILURE")
    assert "snapshot 999 is not a load" in body["error"]
    cli = server.storemon("get-report", report_id)
    assert cli.returncode == 1 and cli.stdout.startswith("Failed: ") and "snapshot 999 is not a load" in cli.stdout
    assert not list(server.paths.reports_dir.glob(f"*{report_id}*"))
    # A worker killed after writing its files, before Dagster recorded success, leaves a
    # Failed run beside files: the lookup removes them, so the folder and the status agree.
    for path in (
        report_path(server.paths.reports_dir, report_id),
        report_record_path(server.paths.reports_dir, report_id),
    ):
        path.write_text("left by a killed worker")
    assert server.get_report(report_id).json()["status"] == "Failed"
    assert not list(server.paths.reports_dir.glob(f"*{report_id}*"))


def test_a_cancelled_run_is_failed_and_leaves_no_report(server):
    server.wait_until_idle()
    client = server.graphql()
    with warehouse_held(server):  # the run waits for its snapshot until it is cancelled
        report_id = server.trigger_rest()
        deadline = time.monotonic() + 120
        while client.get_run_status(report_id).value not in {"STARTED", "SUCCESS"}:
            assert time.monotonic() < deadline, "the report run never started"
            time.sleep(0.05)
        client.terminate_run(report_id)
        assert server.wait_for_report(report_id).headers["X-Report-Status"] == "Failed"  # from CANCELING on
    assert server.wait_for_run(report_id) == "CANCELED", "the run finished before it could be cancelled"
    body = server.get_report(report_id).json()
    assert (body["status"], body["run_status"]) == ("Failed", "CANCELED")
    assert "cancel" in body["error"].lower()
    assert not list(server.paths.reports_dir.glob(f"*{report_id}*"))


def test_the_sensor_reports_once_per_ingest_that_added_polls(server):
    # make run's ingest added the sample's polls: exactly one sensor report, then no more.
    server.wait_for_sensor_ticks(after=time.time())
    [first] = server.runs(SENSOR)
    assert first["jobName"] == "report_job"

    # An ingest that adds nothing: no report.
    assert server.wait_for_run(server.graphql().submit_job_execution("ingest_job")) == "SUCCESS"
    server.wait_for_sensor_ticks(after=time.time())
    assert len(server.runs(SENSOR)) == 1

    # New polls land and are ingested: exactly one more report.
    with open(server.paths.source_dir / "store_status.csv", "a") as polls:
        polls.write(f"{_a_store(server)},inactive,2023-03-15 23:00:00 UTC\n")
    assert server.wait_for_run(server.graphql().submit_job_execution("ingest_job")) == "SUCCESS"
    server.wait_for_sensor_ticks(after=time.time())
    runs = server.runs(SENSOR)
    assert len(runs) == 2
    assert server.wait_for_run(runs[0]["runId"]) == "SUCCESS"


def _a_store(server: StoremonServer) -> str:
    with open(server.paths.source_dir / "store_status.csv") as polls:
        header, first = polls.readline().strip().split(","), polls.readline().strip().split(",")
    return first[header.index("store_id")]


def test_any_graphql_client_launches_a_report_with_the_readme_request(server):
    """The README's curl body, sent as is: the location name in workspace.yaml is the selector."""
    import requests

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    body = readme.split("-H 'Content-Type: application/json' -d '", 1)[1].split("'\n```", 1)[0]
    response = requests.post(
        f"http://127.0.0.1:{server.dagster_port}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    launched = response.json()["data"]["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    report_id = launched["run"]["runId"]
    assert server.wait_for_run(report_id) == "SUCCESS"
    record = report.ReportRecord.read(report_record_path(server.paths.reports_dir, report_id))
    assert record.as_of == "2023-03-13 06:30:00"


# --- faults on the running product (last: they disturb it) ---------------------------------

WORKER_PID = re.compile(r"Started process for run \(pid: (\d+)\)")
RUN_LOGS_QUERY = """
query StoremonTestRunLogs($runId: ID!) {
  logsForRun(runId: $runId) { ... on EventConnection { events { __typename ... on MessageEvent { message } } } }
}
"""


def worker_pid(server: StoremonServer, run_id: str, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = server.graphql()._execute(RUN_LOGS_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
        for event in events:
            match = WORKER_PID.search(event.get("message") or "")
            if match:
                return int(match.group(1))
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} never reported its worker pid")


def test_a_killed_ingest_worker_is_failed_by_run_monitoring_and_frees_its_slot(server):
    server.wait_until_idle()
    # Enough new polls that the ingest is still running when its worker is killed.
    store = _a_store(server)
    with open(server.paths.source_dir / "store_status.csv", "a") as polls:
        polls.writelines(
            f"{store},active,2023-03-16 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i // 86400:06d} UTC\n"
            for i in range(1_500_000)
        )
    client = server.graphql()
    killed = client.submit_job_execution("ingest_job")
    os.kill(worker_pid(server, killed), signal.SIGKILL)
    assert server.wait_for_run(killed, timeout=120) == "FAILURE"
    # The writer pool's only slot is free again: the next ingest runs, and takes the whole file.
    assert server.wait_for_run(client.submit_job_execution("ingest_job"), timeout=300) == "SUCCESS"
    report_id = server.trigger_rest()
    assert server.wait_for_report(report_id).headers["X-Report-Status"] == "Complete"


def test_a_dead_webserver_is_restarted_and_the_api_answers_503_meanwhile(server):
    import requests

    webserver = next(
        int(proc.name)
        for proc in Path("/proc").iterdir()
        if proc.name.isdigit()
        and b"dagster-webserver" in _cmdline(proc)
        and str(server.dagster_port).encode() in _cmdline(proc)
    )
    os.kill(webserver, signal.SIGKILL)
    health = requests.get(f"{server.api}/health", timeout=30)
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert requests.post(f"{server.api}/trigger_report", timeout=30).status_code == 503
    deadline = time.monotonic() + 180
    while requests.get(f"{server.api}/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, server.output
        time.sleep(1)
    assert "storemon: dagster-webserver exited with code -9; restarting in 1 s" in server.output
    assert "storemon: dagster-webserver restarted" in server.output
    while (triggered := requests.post(f"{server.api}/trigger_report", timeout=60)).status_code != 200:
        assert time.monotonic() < deadline, triggered.text  # the code location is loading again
        time.sleep(1)
    assert server.wait_for_report(triggered.json()["report_id"]).headers["X-Report-Status"] == "Complete"


def test_a_dead_code_server_is_restarted_and_reports_are_triggered_again(server):
    """The code server (the gRPC process that holds the definitions and forks the runs) is
    killed: storemon restarts it, a trigger meanwhile is refused with 503 and a sentence (not
    Dagster's exception), and once it is back a triggered report completes."""
    import requests

    if server.paths.warehouse != "duckdb":
        pytest.skip("the code server does not depend on the warehouse: one of them suffices")
    server.wait_until_idle()
    code_server = next(
        int(proc.name)
        for proc in Path("/proc").iterdir()
        if proc.name.isdigit()
        and b"storemon_pipeline.serving.code_server" in _cmdline(proc)
        and str(server.paths.code_server_socket).encode() in _cmdline(proc)
    )
    os.kill(code_server, signal.SIGKILL)
    refused = requests.post(f"{server.api}/trigger_report", timeout=60)
    deadline = time.monotonic() + 180
    assert refused.status_code == 503, refused.text
    assert "cannot reach the code server" in refused.json()["error"] and "Error" not in refused.json()["error"]
    while "storemon: code-server restarted" not in server.output:
        assert time.monotonic() < deadline, server.output
        time.sleep(0.5)
    assert "storemon: code-server exited with code -9" in server.output
    while (triggered := requests.post(f"{server.api}/trigger_report", timeout=60)).status_code != 200:
        assert time.monotonic() < deadline, triggered.text
        time.sleep(1)
    assert server.wait_for_report(triggered.json()["report_id"]).headers["X-Report-Status"] == "Complete"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_health_names_a_damaged_warehouse_file(server):
    import requests

    if server.paths.warehouse != "duckdb":
        pytest.skip("the embedded file only exists in embedded mode")
    server.wait_until_idle()
    database = server.paths.database
    kept = database.read_bytes()
    try:
        database.write_bytes(bytes(4096) + kept[4096:])
        health = requests.get(f"{server.api}/health", timeout=30)
        assert health.status_code == 503
        assert (
            health.json()["storage"]
            == f"{database}: is not a DuckDB database (damaged or a foreign file); move it away and ingest again"
        )
    finally:
        database.write_bytes(kept)
    assert requests.get(f"{server.api}/health", timeout=30).status_code == 200
