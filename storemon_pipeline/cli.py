"""The `storemon` command.

    storemon report --data-dir DIR [--as-of TIMESTAMP] [--out FILE] [--home DIR]

ingests DIR into a fresh temporary home (or --home) and runs the report through the same
Dagster assets, in process. Exit codes: 0 report written; 1 a source file could not be used
(nothing written); 2 report written but some rows were rejected (listed on stderr).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_REJECTED_ROWS = 0, 1, 2


def run_report(data_dir: Path, home: Path, as_of: str | None) -> tuple[bool, Path | None, list[str], list[str]]:
    """Materialize ingestion and report in process. Returns (success, csv path, errors, rejections)."""
    import dagster as dg

    from storemon_pipeline.assets.ingestion import ingestion_assets, ingestion_checks
    from storemon_pipeline.assets.report import report_assets, report_path
    from storemon_pipeline.resources import build_resources
    from storemon_pipeline.settings import StoremonPaths
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storemon", description="Store uptime/downtime during business hours.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="ingest a source folder and print the report CSV")
    report.add_argument("--data-dir", required=True, help="folder with the three source CSVs")
    report.add_argument("--as-of", help="the report's now, UTC (default: the newest poll)")
    report.add_argument("--out", help="write the CSV here instead of stdout")
    report.add_argument("--home", help="keep state here instead of a temporary folder")
    report.set_defaults(handler=report_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
