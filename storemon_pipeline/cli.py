"""The `storemon` command.

    storemon report --data-dir DIR [--as-of TIMESTAMP] [--out FILE] [--home DIR]

ingests DIR into a fresh temporary home (or --home) and runs the report through the same
Dagster assets, in process. Exit codes: 0 report written; 1 a source file could not be used
(nothing written); 2 report written but some rows were rejected (listed on stderr).

    storemon trigger-report [--host H] [--port P] [--as-of TIMESTAMP]
    storemon get-report REPORT_ID [--out FILE] [--host H] [--port P] [--home DIR]

talk to a running Dagster webserver through its GraphQL API (``make run`` starts one):
trigger-report launches ``report_job`` and prints the run id, which is the report_id;
get-report prints Running, Complete (and writes the CSV) or Failed (and the error).
Exit codes of get-report: 0 Complete; 1 Failed; 3 Running; 4 no such report;
5 Dagster did not answer. Malformed ids are usage errors (2).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_REJECTED_ROWS = 0, 1, 2
EXIT_USAGE, EXIT_RUNNING, EXIT_UNKNOWN_REPORT, EXIT_DAGSTER_UNAVAILABLE = 2, 3, 4, 5


def run_report(data_dir: Path, home: Path, as_of: str | None) -> tuple[bool, Path | None, list[str], list[str]]:
    """Materialize ingestion and report in process. Returns (success, csv path, errors, rejections)."""
    import dagster as dg

    from storemon_pipeline.assets.ingestion import ingestion_assets, ingestion_checks
    from storemon_pipeline.assets.report import report_assets
    from storemon_pipeline.resources import build_resources
    from storemon_pipeline.settings import StoremonPaths, report_path
    from storemon_pipeline.warehouse import connect

    paths = StoremonPaths(home=home, source_dir=data_dir)
    result = dg.materialize(
        [*ingestion_assets, *ingestion_checks, *report_assets],
        resources=build_resources(paths),
        run_config={
            "ops": {"localized_business_hours": {"config": {"as_of": as_of}}},
            "loggers": {"console": {"config": {"log_level": "ERROR"}}},
        },
        raise_on_error=False,
    )
    errors = [_error_text(event.event_specific_data.error) for event in result.all_events if event.is_step_failure]
    with connect(paths.database) as conn:
        rejections = [
            f"{source_file}: line {line}: {reason}"
            for source_file, line, reason in conn.execute(
                "SELECT source_file, line_number, reason FROM rejected_rows WHERE run_id = ? ORDER BY source_file, line_number",
                [result.run_id],
            ).fetchall()
        ]
    path = report_path(paths.reports_dir, result.run_id)
    return result.success, (path if path.exists() else None), errors, rejections


def _error_text(error) -> str:
    # The innermost cause is the user-facing message (e.g. which file lacks which column).
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def report_command(args: argparse.Namespace) -> int:
    temporary = args.home is None
    home = Path(args.home or tempfile.mkdtemp(prefix="storemon-home-"))
    try:
        success, path, errors, rejections = run_report(Path(args.data_dir).resolve(), home.resolve(), args.as_of)
        for line in rejections:
            print(f"rejected: {line}", file=sys.stderr)
        if not success or path is None:
            for error in errors or ["the report run failed"]:
                print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
        if args.out:
            shutil.copyfile(path, args.out)
        else:
            sys.stdout.write(path.read_text())
        return EXIT_REJECTED_ROWS if rejections else EXIT_OK
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)


def _report_runs(args: argparse.Namespace):
    from storemon_pipeline.report_runs import ReportRuns
    from storemon_pipeline.settings import paths_from_env

    paths = paths_from_env()
    if getattr(args, "home", None):
        paths = dataclasses.replace(paths, home=Path(args.home).resolve())
    return ReportRuns(args.host, args.port, paths.reports_dir)


def _reporting_errors(handler):
    """Run a GraphQL command; an error it raises goes to stderr and picks the exit code."""
    from storemon_pipeline.report import ReportError
    from storemon_pipeline.report_runs import (
        DagsterUnavailable,
        InvalidReportId,
        UnknownReport,
    )

    exit_codes = {
        ReportError: EXIT_USAGE,  # a malformed --as-of
        InvalidReportId: EXIT_USAGE,
        UnknownReport: EXIT_UNKNOWN_REPORT,
        DagsterUnavailable: EXIT_DAGSTER_UNAVAILABLE,
    }

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except tuple(exit_codes) as error:
            print(f"error: {error}", file=sys.stderr)
            return next(code for kind, code in exit_codes.items() if isinstance(error, kind))

    return run


@_reporting_errors
def trigger_report_command(args: argparse.Namespace) -> int:
    from storemon_pipeline.report import parse_as_of

    parse_as_of(args.as_of)  # fail here, not minutes later in a queued run
    print(_report_runs(args).trigger(args.as_of, trigger="cli"))
    return EXIT_OK


@_reporting_errors
def get_report_command(args: argparse.Namespace) -> int:
    from storemon_pipeline.report_runs import ReportState

    run = _report_runs(args).lookup(args.report_id)
    if run.state is ReportState.RUNNING:
        print(ReportState.RUNNING.value)
        return EXIT_RUNNING
    if run.state is ReportState.FAILED:
        print(f"{ReportState.FAILED.value}: {run.error}")
        return EXIT_FAILED
    out = Path(args.out or f"report-{run.report_id}.csv")
    _copy_atomically(run.path, out)
    print(f"{ReportState.COMPLETE.value}: {out}")
    return EXIT_OK


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    partial.replace(target)


def _add_dagster_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("STOREMON_HOST", "127.0.0.1"), help="Dagster webserver host")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("STOREMON_DAGSTER_PORT", "3000")), help="Dagster webserver port"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storemon", description="Store uptime/downtime during business hours.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="ingest a source folder and print the report CSV")
    report.add_argument("--data-dir", required=True, help="folder with the three source CSVs")
    report.add_argument("--as-of", help="the report's now, UTC (default: the newest poll)")
    report.add_argument("--out", help="write the CSV here instead of stdout")
    report.add_argument("--home", help="keep state here instead of a temporary folder")
    report.set_defaults(handler=report_command)

    trigger = commands.add_parser("trigger-report", help="launch report_job on a running Dagster; print the report_id")
    _add_dagster_address(trigger)
    trigger.add_argument("--as-of", help="the report's now, UTC (default: the newest ingested poll)")
    trigger.set_defaults(handler=trigger_report_command)

    get = commands.add_parser("get-report", help="print Running/Complete/Failed; write the CSV when Complete")
    get.add_argument("report_id", help="the id trigger-report printed (a Dagster run id)")
    get.add_argument("--out", help="where to write the CSV (default: ./report-<id>.csv)")
    get.add_argument("--home", help="the storemon home the server uses (default: $STOREMON_HOME or .storemon)")
    _add_dagster_address(get)
    get.set_defaults(handler=get_report_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
