"""Report runs seen through Dagster's GraphQL API: trigger one, and look one up by report_id.

Shared by ``storemon trigger-report``/``get-report`` and the REST API, so the three ways in
(UI, GraphQL, REST) agree: a report is the CSV that a ``report_job`` run wrote to
``reports/<run id>.csv``, and its state is the run's state. Nothing here opens the warehouse.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from storemon_pipeline.core.settings import (
    CODE_LOCATION_NAME,
    REPORT_FILE_NAMES,
    REPORT_JOB_NAME,
    report_file_path,
    report_path,
    report_record_path,
)

# Dagster run ids are UUIDs; only this exact shape may ever become part of a file name.
_REPORT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

REPOSITORY_NAME = "__repository__"  # the repository a Definitions object makes
_RUNNING = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED"}
_FAILED = {"FAILURE", "CANCELED", "CANCELING"}

RUN_QUERY = """
query StoremonReportRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId jobName status assetSelection { path } }
    ... on PythonError { message }
  }
}
"""

RUNS_QUERY = """
query StoremonReportRuns($limit: Int) {
  runsOrError(filter: {pipelineName: "report_job"}, limit: $limit) {
    __typename
    ... on Runs { results { runId status creationTime } }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query StoremonRunFailure($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message causes { message } } }
        ... on RunFailureEvent { message error { message causes { message } } }
        ... on RunCanceledEvent { message }
      }
    }
    ... on PythonError { message }
  }
}
"""


class ReportState(str, Enum):
    RUNNING = "Running"
    COMPLETE = "Complete"
    FAILED = "Failed"


class InvalidReportId(ValueError):
    """The text is not a report id (a Dagster run id)."""


class UnknownReport(LookupError):
    """No report_job run has this id."""


class DagsterUnavailable(RuntimeError):
    """The Dagster webserver did not answer."""


@dataclass(frozen=True)
class ReportRun:
    report_id: str
    state: ReportState
    run_status: str
    error: str | None = None
    path: Path | None = None


class UnknownStore(Exception):
    """The store is not in the report."""


class NoStoreDetail(Exception):
    """The report has no per-store files: an older storemon wrote it."""


def store_rows(path: Path, store_id: str) -> list[dict]:
    """One store's rows of a report CSV (sorted by store_id in byte order), numbers as numbers
    and empty fields as None; the file is read up to just past the store."""
    key, rows = store_id.encode(), []
    with path.open("r", newline="", encoding="utf-8") as data:
        for row in csv.DictReader(data):
            here = row["store_id"].encode()
            if here > key:
                break
            if here == key:
                rows.append({name: text if name == "store_id" else _value(text) for name, text in row.items()})
    return rows


WINDOWS = ("hour", "day", "week")


def _intervals(extended: Path, store_id: str) -> dict:
    """The store's evidence per window, from the extended CSV: the 90 % interval for its true
    uptime, its in-hours polls and its unobserved business time (the window's unit)."""
    (row,) = store_rows(extended, store_id)
    return {
        window: {
            "uptime_lo": row[f"uptime_last_{window}_lo"],
            "uptime_hi": row[f"uptime_last_{window}_hi"],
            "polls": row[f"polls_last_{window}"],
            "unobserved": row[f"unobserved_last_{window}"],
        }
        for window in WINDOWS
    }


def _value(text: str):
    """A CSV field as JSON: a number if it is one (ids aside), None if empty, else the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_report_id(text: str | None) -> str:
    """The canonical (lower-case) report id, or InvalidReportId."""
    candidate = (text or "").strip().lower()
    if not candidate:
        raise InvalidReportId("report_id is required")
    if not _REPORT_ID.fullmatch(candidate):
        raise InvalidReportId(f"report_id {text!r} is not a run id (a UUID: 8-4-4-4-12 hex digits)")
    return candidate


class ReportRuns:
    """Trigger and look up report runs on one Dagster webserver; read CSVs from reports_dir."""

    def __init__(self, host: str, port: int, reports_dir: Path, timeout: int = 60):
        self.host, self.port, self.reports_dir, self.timeout = host, port, reports_dir, timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/graphql"

    def _client(self) -> DagsterGraphQLClient:
        # One client per call: the gql session is not shared between threads of the REST API.
        return DagsterGraphQLClient(self.host, port_number=self.port, timeout=self.timeout)

    def _unavailable(self) -> DagsterUnavailable:
        # One line: the address and what to do (the client's own message carries the whole query).
        return DagsterUnavailable(
            f"Dagster is not answering at {self.url}; start it with `make run`, or point "
            "STOREMON_HOST / STOREMON_DAGSTER_PORT (--host / --port) at the one that runs"
        )

    def _query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._client()._execute(query, variables)
        except DagsterGraphQLClientError as error:
            raise self._unavailable() from error

    def ping(self) -> str:
        """The Dagster version, or DagsterUnavailable."""
        return self._query("query StoremonPing { version }", {})["version"]

    def trigger(self, as_of: str | None = None, trigger: str = "api", snapshot: str | int | None = None) -> str:
        """Launch report_job; return its run id (the report_id)."""
        config = {"as_of": as_of or None, "snapshot": int(snapshot) if snapshot not in (None, "") else None}
        run_config = {"ops": {"report": {"config": config}}}
        try:
            # Naming the location saves a query of the whole workspace per trigger.
            return self._client().submit_job_execution(
                REPORT_JOB_NAME,
                repository_location_name=CODE_LOCATION_NAME,
                repository_name=REPOSITORY_NAME,
                run_config=run_config,
                tags={"storemon/trigger": trigger},
            )
        except DagsterGraphQLClientError as error:
            # (the client says only this, with the query text, when the server does not answer)
            if "Exception occured during execution of query" in str(error) or "connect" in str(error).lower():
                raise self._unavailable() from error
            if "DagsterUserCodeUnreachableError" in str(error):
                raise DagsterUnavailable(
                    f"Dagster at {self.url} cannot reach the code server that holds {REPORT_JOB_NAME}; "
                    "storemon restarts it: try again in a few seconds"
                ) from error
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DagsterUnavailable(f"Dagster at {self.url} did not launch {REPORT_JOB_NAME}: {first_line}") from error

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest report runs first: id, status, as_of, row count and created (UTC ISO)."""
        runs = self._query(RUNS_QUERY, {"limit": limit})["runsOrError"]
        if runs["__typename"] != "Runs":
            raise DagsterUnavailable(f"Dagster could not list runs: {runs.get('message', runs['__typename'])}")
        listed = []
        for run in runs["results"]:
            state = _state(run["status"])
            entry = {
                "report_id": run["runId"],
                "status": state.value,
                "run_status": run["status"],
                "as_of": None,
                "row_count": None,
                "created": _iso(run.get("creationTime")),
            }
            record_path = report_record_path(self.reports_dir, run["runId"])
            if state is ReportState.COMPLETE and record_path.is_file():
                record = json.loads(record_path.read_text())
                entry.update(as_of=record["as_of"], row_count=record["row_count"])
            elif state is ReportState.COMPLETE:
                entry["status"] = ReportState.FAILED.value  # its file is gone
            listed.append(entry)
        return listed

    def lookup(self, report_id: str) -> ReportRun:
        """The report's state; UnknownReport if the id is not a run that materializes the report."""
        report_id = parse_report_id(report_id)
        run = self._query(RUN_QUERY, {"runId": report_id})["runOrError"]
        if run["__typename"] == "RunNotFoundError":
            raise UnknownReport(f"no run has id {report_id}")
        if run["__typename"] != "Run":
            raise DagsterUnavailable(
                f"Dagster could not look up run {report_id}: {run.get('message', run['__typename'])}"
            )
        if not _materializes_the_report(run):
            raise UnknownReport(f"run {report_id} ran {run['jobName']}, not {REPORT_JOB_NAME}")
        status = run["status"]
        if status in _RUNNING:
            return ReportRun(report_id, ReportState.RUNNING, status)
        if status in {"FAILURE", "CANCELED"}:
            self._remove_orphaned_files(report_id)
        if status in _FAILED:
            return ReportRun(report_id, ReportState.FAILED, status, error=self._failure_text(report_id, status))
        path = report_path(self.reports_dir, report_id)
        if status == "SUCCESS" and path.is_file():
            return ReportRun(report_id, ReportState.COMPLETE, status, path=path)
        error = (
            f"the run succeeded but its report file {path} is missing"
            if status == "SUCCESS"
            else f"run status {status}"
        )
        return ReportRun(report_id, ReportState.FAILED, status, error=error)

    def store(self, run: ReportRun, store_id: str) -> dict:
        """One store of a complete report: its row, its 7 local dates and its incidents."""
        record_path = report_record_path(self.reports_dir, run.report_id)
        files = {name: report_file_path(self.reports_dir, run.report_id, name) for name in REPORT_FILE_NAMES}
        missing = [path.name for path in (record_path, *files.values()) if not path.exists()]
        if missing:
            raise NoStoreDetail(
                f"report {run.report_id} has no per-store detail (an older version made it, without "
                f"{', '.join(missing)}); its CSV is at /get_report"
            )
        (row,) = store_rows(run.path, store_id) or [None]
        if row is None:
            raise UnknownStore(f"store {store_id!r} is not in report {run.report_id}")
        record = json.loads(record_path.read_text())
        return {
            "report_id": run.report_id,
            "store_id": store_id,
            "as_of": record["as_of"],
            "report": {name: value for name, value in row.items() if name != "store_id"},
            **{
                name: [
                    {key: value for key, value in found.items() if key != "store_id"}
                    for found in store_rows(files[name], store_id)
                ]
                for name in ("daily", "incidents")
            },
            "intervals": _intervals(files["extended"], store_id),
        }

    def _remove_orphaned_files(self, report_id: str) -> None:
        """A run killed after writing its files, before Dagster recorded success, is Failed:
        its files go, so that the folder and the status agree."""
        for path in (
            report_path(self.reports_dir, report_id),
            *(report_file_path(self.reports_dir, report_id, name) for name in REPORT_FILE_NAMES),
            report_record_path(self.reports_dir, report_id),
        ):
            path.unlink(missing_ok=True)

    def _failure_text(self, report_id: str, status: str) -> str:
        if status == "CANCELING":
            return "the run is being cancelled"
        logs = self._query(RUN_EVENTS_QUERY, {"runId": report_id})["logsForRun"]
        events = logs.get("events", []) if logs["__typename"] == "EventConnection" else []
        if status == "CANCELED":
            # (A cancelled step fails with a bare DagsterExecutionInterruptedError; the run's
            # own event says what happened.)
            cancelled = [event["message"] for event in events if event["__typename"] == "RunCanceledEvent"]
            return cancelled[-1] if cancelled else "the run was cancelled"
        step_failures = [
            f"{event['stepKey']}: {_innermost_message(event['error'])}"
            for event in events
            if event["__typename"] == "ExecutionStepFailureEvent"
        ]
        if step_failures:
            return "; ".join(step_failures)
        run_failures = [event for event in events if event["__typename"] == "RunFailureEvent"]
        if run_failures:
            failure = run_failures[-1]
            return _innermost_message(failure["error"]) if failure.get("error") else failure["message"]
        return "the run failed"


def _state(run_status: str) -> ReportState:
    if run_status in _RUNNING:
        return ReportState.RUNNING
    return ReportState.COMPLETE if run_status == "SUCCESS" else ReportState.FAILED


def _iso(epoch_seconds: float | None) -> str | None:
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).isoformat(timespec="seconds")


def _materializes_the_report(run: dict[str, Any]) -> bool:
    # report_job runs, and runs launched from the UI's "Materialize" that include store_report.
    selected = {tuple(key["path"]) for key in run.get("assetSelection") or []}
    return run["jobName"] == REPORT_JOB_NAME or ("store_report",) in selected


def _innermost_message(error: dict[str, Any]) -> str:
    # Dagster wraps user errors ("Error occurred while executing op ..."); the last cause is
    # the one that says what is wrong (e.g. "no polls have been ingested").
    causes = error.get("causes") or []
    return (causes[-1]["message"] if causes else error["message"]).strip()
