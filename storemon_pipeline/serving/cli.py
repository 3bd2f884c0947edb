"""The `storemon` command.

    storemon report [--data-dir DIR] [--polls FILE...] [--hours FILE] [--timezones FILE]
                    [--as-of TIMESTAMP] [--snapshot LOAD_ID] [--out FILE]
                    [--home DIR] [--warehouse duckdb|postgresql://...]
                    [--shards N] [--executor in_process|multiprocess|dask] [--dask-address tcp://...]

ingests DIR (or the files named) as one load into the warehouse (the embedded DuckDB file of a fresh temporary
home, or --home; or the Postgres database of --warehouse / STOREMON_WAREHOUSE) and computes
the report from the latest load, or from --snapshot (a load id: exactly the polls that load
had seen). With --shards or --executor, the report is computed by report_job (a Dagster run
on an instance in the home) in N store shards on that executor; the CSV is the same. Without
--data-dir it reports on what the warehouse already holds. Exit codes:
0 report written; 1 a source file or the warehouse could not be used (nothing written);
2 report written but some rows were rejected or a file was damaged (listed on stderr).

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
SHOWN_REJECTIONS = 50


def report_command(args: argparse.Namespace) -> int:
    from storemon_pipeline.core import ingest, report, sources
    from storemon_pipeline.core.health import StorageFull
    from storemon_pipeline.core.settings import (
        SettingsError,
        normalize_warehouse,
        report_file_path,
        report_path,
        settings_from_env,
    )
    from storemon_pipeline.core.warehouse import WarehouseError, open_warehouse

    temporary = args.home is None
    home = Path(args.home or tempfile.mkdtemp(prefix="storemon-home-")).resolve()
    try:
        settings = settings_from_env()
        # Reports go to STOREMON_REPORTS_DIR if set (a store other machines reach), else the home.
        settings = settings.replace(home=home, reports_dir_override=settings.reports_dir_override or home / "reports")
        if args.warehouse:
            settings = settings.replace(warehouse=normalize_warehouse(args.warehouse))
        explicit = {
            source: tuple(Path(path).resolve() for path in paths)
            for source, paths in (
                ("store_status", args.polls),
                ("business_hours", [args.hours] if args.hours else None),
                ("timezones", [args.timezones] if args.timezones else None),
            )
            if paths
        }
        if args.data_dir:
            settings = settings.replace(source_dir=Path(args.data_dir).resolve())
            if not settings.source_dir.is_dir():
                raise sources.SourceError(
                    f"--data-dir {args.data_dir}: "
                    + ("no such folder" if not settings.source_dir.exists() else "is not a folder")
                )
        elif explicit and len(explicit) < 3:
            raise sources.SourceError(
                "with --polls, --hours or --timezones, name all three, or give --data-dir for the rest"
            )
        ingesting = bool(args.data_dir or explicit)
        warehouse = open_warehouse(settings, progress=lambda message: None)
        run_id = str(uuid.uuid4())
        rejected = []
        if ingesting:
            outcome = ingest.ingest(
                warehouse, settings.source_dir, run_id=run_id, progress=lambda message: None, files=explicit
            )
            rejected = warehouse.rejected_rows(run_id)
            for source_file, line, reason in rejected[:SHOWN_REJECTIONS]:
                print(f"rejected: {source_file}: line {line}: {reason}", file=sys.stderr)
            if len(rejected) > SHOWN_REJECTIONS:
                print(
                    f"rejected: ... and {len(rejected) - SHOWN_REJECTIONS:,} more rows (all are in the rejected_rows table)",
                    file=sys.stderr,
                )
            for result in outcome.results.values():
                for warning in result.warnings:
                    print(f"warning: {result.source_file}: {warning}", file=sys.stderr)
            if outcome.errors:
                for error in outcome.errors:
                    print(f"error: {error}", file=sys.stderr)
                return EXIT_FAILED
        snapshot = warehouse.pin_snapshot(report.parse_snapshot(args.snapshot), report.parse_as_of(args.as_of))
        if args.shards is None and args.executor is None:
            # (Only what it prints: the report, or the extended report.)
            files = ("extended",) if args.extended else ()
            assembled = report.AssembledReport([report.compute_shard(warehouse, snapshot, files=files)])
            assembled.write(settings.reports_dir, run_id, warehouse.kind)
            coverage = assembled.coverage
        else:
            run_id, coverage = run_report_job(settings, snapshot, args.shards or 1, args.executor, args.dask_address)
        print(f"note: {coverage.summary()}", file=sys.stderr)
        for warning in coverage.warnings():
            print(f"warning: {warning}", file=sys.stderr)
        path = (
            report_file_path(settings.reports_dir, run_id, "extended")
            if args.extended
            else report_path(settings.reports_dir, run_id)
        )
        if args.out:
            _copy_atomically(path, Path(args.out))
        else:
            sys.stdout.write(path.read_text())
        warned = ingesting and any(result.warnings for result in outcome.results.values())
        return EXIT_REJECTED_ROWS if rejected or warned else EXIT_OK
    except (sources.SourceError, WarehouseError, report.ReportError, SettingsError, StorageFull) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)


def run_report_job(settings, snapshot, shards: int, executor: str | None, dask_address: str | None):
    """report_job on a Dagster instance in the home (its Postgres when the warehouse is), with
    the executor chosen; the report's id (the run id) and the sources' coverage."""
    import os

    import dagster as dg
    from dagster._core.definitions.reconstruct import build_reconstructable_job

    from storemon_pipeline.core.report import Coverage, ReportError
    from storemon_pipeline.executors import execution_config
    from storemon_pipeline.serving.serve import prepare_instance

    # The run's other processes (multiprocess steps, local Dask workers) read these.
    os.environ.update(prepare_instance(settings))
    run_config = {
        "execution": execution_config(executor or "in_process", dask_address),
        "ops": {"report": {"config": {"as_of": str(snapshot.as_of), "snapshot": snapshot.load_id, "shards": shards}}},
    }
    job = build_reconstructable_job("storemon_pipeline.definitions", "resolved_report_job")
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(job, instance, run_config=run_config)
        if not result.success:
            failures = [event.message for event in result.all_events if event.is_step_failure or event.is_failure]
            raise ReportError(f"report run {result.run_id} failed: {failures[0] if failures else 'see its logs'}")
        (metadata,) = [
            event.materialization.metadata
            for event in result.get_asset_materialization_events()
            if event.asset_key == dg.AssetKey("store_report")
        ]
    fields = Coverage.__dataclass_fields__
    return result.run_id, Coverage(**{name: metadata[name].value for name in fields})


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
        from storemon_pipeline.core.report_request import ReportError
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
    from storemon_pipeline.core.report_request import parse_as_of, parse_snapshot

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
    with source.open("rb") as data, open(partial, "wb") as out:  # (source may be at a URL)
        shutil.copyfileobj(data, out)
    partial.replace(target)


def _add_dagster_address(parser: argparse.ArgumentParser, settings) -> None:
    parser.add_argument(
        "--host", default=settings.host, help=f"Dagster webserver host (STOREMON_HOST; now {settings.host})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.dagster_port,
        help=f"Dagster webserver port (STOREMON_DAGSTER_PORT; now {settings.dagster_port})",
    )


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Every failure is one line on stderr (``--verbose``: the traceback as well)."""
    verbose = "--verbose" in (sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the one place that turns any failure into one line
        if verbose:
            raise
        print(f"error: {one_line(error)} (--verbose shows where)", file=sys.stderr)
        return EXIT_FAILED


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    from storemon_pipeline.core.settings import RUN_EXECUTORS, redact, settings_from_env

    settings = settings_from_env()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="on failure, show the traceback too")
    parser = argparse.ArgumentParser(
        prog="storemon",
        description="Store uptime/downtime during business hours. Settings come from STOREMON_* variables "
        "(README: Settings); options override them.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", parents=[common], help="ingest a source folder and print the report CSV")
    report.add_argument(
        "--data-dir",
        help=f"folder with the three source CSVs, ingested first as one load (STOREMON_SOURCE_DIR; now {settings.source_dir})",
    )
    report.add_argument(
        "--polls",
        nargs="+",
        metavar="FILE",
        help="poll file(s) of any name, instead of the folder's (a dataset split in parts: several)",
    )
    report.add_argument("--hours", metavar="FILE", help="the business-hours file, instead of the folder's")
    report.add_argument("--timezones", metavar="FILE", help="the time-zone file, instead of the folder's")
    report.add_argument("--as-of", help="the report's now, UTC (default: the newest poll)")
    report.add_argument("--snapshot", help="a load id: recompute from exactly the polls that load had seen")
    report.add_argument(
        "--warehouse", help=f"duckdb or a postgresql:// URL (STOREMON_WAREHOUSE; now {redact(settings.warehouse)})"
    )
    report.add_argument(
        "--shards",
        type=positive_int,
        help="compute in this many store shards through report_job (a Dagster run in the home); same CSV",
    )
    report.add_argument(
        "--executor",
        choices=RUN_EXECUTORS,
        help="where report_job runs the shard steps (default in_process; dask: a local 2-worker cluster, "
        "or --dask-address)",
    )
    report.add_argument(
        "--dask-address", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (with --executor dask)"
    )
    report.add_argument("--out", help="write the CSV here instead of stdout")
    report.add_argument(
        "--extended",
        action="store_true",
        help="the extended CSV: the report's columns plus, per window, a 90 %% interval for the true uptime, "
        "the in-hours polls and the unobserved business time (docs/report.md)",
    )
    report.add_argument("--home", help="keep state here instead of a temporary folder")
    report.set_defaults(handler=report_command)

    trigger = commands.add_parser(
        "trigger-report", parents=[common], help="launch report_job on a running Dagster; print the report_id"
    )
    _add_dagster_address(trigger, settings)
    trigger.add_argument("--as-of", help="the report's now, UTC (default: the newest ingested poll)")
    trigger.add_argument("--snapshot", help="a load id: recompute from exactly the polls that load had seen")
    trigger.set_defaults(handler=trigger_report_command)

    get = commands.add_parser(
        "get-report", parents=[common], help="print Running/Complete/Failed; write the CSV when Complete"
    )
    get.add_argument("report_id", help="the id trigger-report printed (a Dagster run id)")
    get.add_argument("--out", help="where to write the CSV (default: ./report-<id>.csv)")
    get.add_argument("--home", help=f"the storemon home the server uses (STOREMON_HOME; now {settings.home})")
    _add_dagster_address(get, settings)
    get.set_defaults(handler=get_report_command)
    return parser


if __name__ == "__main__":
    sys.exit(main())
