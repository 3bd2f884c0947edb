"""The `storemon` command.

    storemon report [--data-dir DIR] [--as-of TIMESTAMP] [--snapshot LOAD_ID] [--out FILE]
                    [--home DIR] [--warehouse duckdb|postgresql://...]

ingests DIR as one load into the warehouse (the embedded DuckDB file of a fresh temporary
home, or --home; or the Postgres database of --warehouse / STOREMON_WAREHOUSE) and computes
the report from the latest load, or from --snapshot (a load id: exactly the polls that load
had seen). Without --data-dir it reports on what the warehouse already holds. Exit codes:
0 report written; 1 a source file or the warehouse could not be used (nothing written);
2 report written but some rows were rejected (listed on stderr).

    storemon trigger-report [--host H] [--port P] [--as-of TIMESTAMP] [--snapshot LOAD_ID]
    storemon get-report REPORT_ID [--out FILE] [--host H] [--port P] [--home DIR]

talk to a running Dagster webserver through its GraphQL API (``make run`` starts one):
trigger-report launches ``report_job`` and prints the run id, which is the report_id;
get-report prints Running, Complete (and writes the CSV) or Failed (and the error).
Exit codes of get-report: 0 Complete; 1 Failed; 3 Running; 4 no such report;
5 Dagster did not answer. Malformed ids are usage errors (2).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_REJECTED_ROWS = 0, 1, 2
EXIT_USAGE, EXIT_RUNNING, EXIT_UNKNOWN_REPORT, EXIT_DAGSTER_UNAVAILABLE = 2, 3, 4, 5


def report_command(args: argparse.Namespace) -> int:
    from storemon_pipeline.core import ingest, report, sources
    from storemon_pipeline.core.health import StorageFull
    from storemon_pipeline.core.settings import SettingsError, normalize_warehouse, report_path, settings_from_env
    from storemon_pipeline.core.warehouse import WarehouseError, open_warehouse

    temporary = args.home is None
    home = Path(args.home or tempfile.mkdtemp(prefix="storemon-home-")).resolve()
    try:
        settings = settings_from_env().replace(home=home, reports_dir_override=home / "reports")
        if args.warehouse:
            settings = settings.replace(warehouse=normalize_warehouse(args.warehouse))
        if args.data_dir:
            settings = settings.replace(source_dir=Path(args.data_dir).resolve())
        warehouse = open_warehouse(settings, progress=lambda message: None)
        run_id = str(uuid.uuid4())
        rejected = []
        if args.data_dir:
            outcome = ingest.ingest(warehouse, settings.source_dir, run_id=run_id, progress=lambda message: None)
            rejected = warehouse.rejected_rows(run_id)
            for source_file, line, reason in rejected:
                print(f"rejected: {source_file}: line {line}: {reason}", file=sys.stderr)
            if outcome.errors:
                for error in outcome.errors:
                    print(f"error: {error}", file=sys.stderr)
                return EXIT_FAILED
        with report.ReportComputation(warehouse, report.parse_snapshot(args.snapshot), report.parse_as_of(args.as_of)) as run:
            run.build_all()
            run.write_report(settings.reports_dir, run_id)
        path = report_path(settings.reports_dir, run_id)
        if args.out:
            shutil.copyfile(path, args.out)
        else:
            sys.stdout.write(path.read_text())
        return EXIT_REJECTED_ROWS if rejected else EXIT_OK
    except (sources.SourceError, WarehouseError, report.ReportError, SettingsError, StorageFull) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)


def _report_runs(args: argparse.Namespace):
    from storemon_pipeline.core.settings import settings_from_env
    from storemon_pipeline.serving.report_runs import ReportRuns

    settings = settings_from_env()
    if getattr(args, "home", None):
        home = Path(args.home).resolve()
        settings = settings.replace(home=home, reports_dir_override=home / "reports")
    return ReportRuns(args.host, args.port, settings.reports_dir)


def _reporting_errors(handler):
    """Run a GraphQL command; an error it raises goes to stderr and picks the exit code.
    (Its imports wait for the call: `storemon report` never loads the GraphQL client.)"""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from storemon_pipeline.core.report import ReportError
        from storemon_pipeline.serving.report_runs import DagsterUnavailable, InvalidReportId, UnknownReport

        exit_codes = {
            ReportError: EXIT_USAGE,  # a malformed --as-of
            InvalidReportId: EXIT_USAGE,
            UnknownReport: EXIT_UNKNOWN_REPORT,
            DagsterUnavailable: EXIT_DAGSTER_UNAVAILABLE,
        }
        try:
            return handler(args)
        except tuple(exit_codes) as error:
            print(f"error: {error}", file=sys.stderr)
            return next(code for kind, code in exit_codes.items() if isinstance(error, kind))

    return run


@_reporting_errors
def trigger_report_command(args: argparse.Namespace) -> int:
    from storemon_pipeline.core.report import parse_as_of, parse_snapshot

    # Fail here, not later in a queued run.
    parse_as_of(args.as_of)
    parse_snapshot(args.snapshot)
    print(_report_runs(args).trigger(args.as_of, trigger="cli", snapshot=args.snapshot))
    return EXIT_OK


@_reporting_errors
def get_report_command(args: argparse.Namespace) -> int:
    from storemon_pipeline.serving.report_runs import ReportState

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
    from storemon_pipeline.core.settings import settings_from_env

    settings = settings_from_env()
    parser.add_argument(
        "--host", default=settings.host, help=f"Dagster webserver host (STOREMON_HOST; now {settings.host})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.dagster_port,
        help=f"Dagster webserver port (STOREMON_DAGSTER_PORT; now {settings.dagster_port})",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storemon", description="Store uptime/downtime during business hours.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="ingest a source folder and print the report CSV")
    report.add_argument("--data-dir", help="folder with the three source CSVs (ingested first as one load)")
    report.add_argument("--as-of", help="the report's now, UTC (default: the newest poll)")
    report.add_argument("--snapshot", help="a load id: recompute from exactly the polls that load had seen")
    report.add_argument("--warehouse", help="duckdb (default) or a postgresql:// URL (STOREMON_WAREHOUSE)")
    report.add_argument("--out", help="write the CSV here instead of stdout")
    report.add_argument("--home", help="keep state here instead of a temporary folder")
    report.set_defaults(handler=report_command)

    trigger = commands.add_parser("trigger-report", help="launch report_job on a running Dagster; print the report_id")
    _add_dagster_address(trigger)
    trigger.add_argument("--as-of", help="the report's now, UTC (default: the newest ingested poll)")
    trigger.add_argument("--snapshot", help="a load id: recompute from exactly the polls that load had seen")
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
