"""One measured step per process, so each peak RSS is that step's alone.

    python -m benchmarks.steps ingest   --source DIR --home DIR
    python -m benchmarks.steps report   --home DIR
    python -m benchmarks.steps cli      --source DIR --out FILE [--warehouse URL]
    python -m benchmarks.steps baseline --source DIR --stores N --storemon-csv FILE
    python -m benchmarks.steps floor    --source DIR --out FILE

Each prints one JSON object on its last line: seconds, peak_rss_mb and step figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """This process's peak RSS (VmHWM, which starts afresh at exec; ru_maxrss would carry the
    peak of the process it was forked from), or its children's largest (ru_maxrss, in KiB)."""
    if who == resource.RUSAGE_SELF:
        return vm_hwm_mb()
    return resource.getrusage(who).ru_maxrss / 1024


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def ingest(args: argparse.Namespace) -> dict:
    from storemon_pipeline.core import ingest as storemon_ingest
    from storemon_pipeline.core.settings import settings_from_env
    from storemon_pipeline.core.warehouse import open_warehouse

    settings = settings_from_env().replace(home=Path(args.home), source_dir=Path(args.source))
    started = time.perf_counter()
    outcome = storemon_ingest.ingest(open_warehouse(settings), settings.source_dir, progress=lambda message: None)
    polls = outcome.results["store_status"]
    return {"seconds": time.perf_counter() - started, "polls": polls.rows_added, "rejected": polls.rows_rejected}


def report(args: argparse.Namespace) -> dict:
    from storemon_pipeline.core import report as storemon_report
    from storemon_pipeline.core.db import write_atomically
    from storemon_pipeline.core.settings import settings_from_env
    from storemon_pipeline.core.warehouse import open_warehouse

    settings = settings_from_env().replace(home=Path(args.home))
    timings = {}
    started = time.perf_counter()
    with storemon_report.ReportComputation(open_warehouse(settings)) as run:
        timings["snapshot_seconds"] = time.perf_counter() - started

        def build(steps):
            for step in steps:
                step_started = time.perf_counter()
                run.build(step)
                timings[f"{step}_seconds"] = time.perf_counter() - step_started

        # The plain report (three tables and the CSV) first, so that its own peak is known.
        build(storemon_report.PLAIN_STEPS)
        step_started = time.perf_counter()
        rows = run.file_bytes(storemon_report.REPORT_QUERY, "FORMAT csv, HEADER false")
        write_atomically(Path(args.home) / "reports" / "benchmark.csv", [storemon_report.REPORT_HEADER, rows])
        timings["csv_seconds"] = time.perf_counter() - step_started
        timings["plain_peak_rss_mb"] = vm_hwm_mb()
        build(step for step in run.STEPS if step not in storemon_report.PLAIN_STEPS)
        step_started = time.perf_counter()
        extended = storemon_report.REPORT_FILES["extended"]
        rows = run.file_bytes(extended.query, "FORMAT csv, HEADER false")
        write_atomically(Path(args.home) / "reports" / "benchmark.extended.csv", [extended.header, rows])
        timings["extended_csv_seconds"] = time.perf_counter() - step_started
        stores, as_of = run.value("SELECT count(*) FROM store_report"), str(run.snapshot.as_of)
    return {"seconds": time.perf_counter() - started, "stores": stores, "as_of": as_of, **timings}


def cli(args: argparse.Namespace) -> dict:
    storemon = Path(sys.executable).parent / "storemon"
    started = time.perf_counter()
    warehouse = ["--warehouse", args.warehouse] if args.warehouse else []
    done = subprocess.run(
        [str(storemon), "report", "--data-dir", args.source, "--out", args.out, *warehouse],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise SystemExit(f"storemon report failed ({done.returncode}): {done.stderr[-2000:]}")
    # The command's own peak, not this wrapper's.
    return {"seconds": seconds, "exit_code": done.returncode, "peak_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN)}


def baseline(args: argparse.Namespace) -> dict:
    from benchmarks.baseline import baseline_report, load_sources

    started = time.perf_counter()
    polls, hours, zones = load_sources(Path(args.source))
    load_seconds = time.perf_counter() - started
    all_stores = np.sort(polls["store_id"].unique())
    sample = np.sort(np.random.default_rng(0).choice(all_stores, size=min(args.stores, len(all_stores)), replace=False))
    started = time.perf_counter()
    result = baseline_report(polls, hours, zones, store_ids=sample)
    loop_seconds = time.perf_counter() - started
    per_store = loop_seconds / len(sample)
    storemon = pd.read_csv(args.storemon_csv, dtype={"store_id": str}).set_index("store_id").loc[result["store_id"]]
    difference = (result.set_index("store_id") - storemon).abs().max().max()
    # The baseline is a third implementation of the same rules: a speed ratio against a
    # different answer would mean nothing.
    if difference > 0.011:
        raise SystemExit(f"the baseline differs from storemon by {difference:.3f}")
    return {
        "seconds": load_seconds + per_store * len(all_stores),
        "extrapolated": len(sample) < len(all_stores),
        "stores_timed": len(sample),
        "stores_total": len(all_stores),
        "load_seconds": load_seconds,
        "seconds_per_store": per_store,
        "max_difference_from_storemon": float(difference),
    }


def sharded(args: argparse.Namespace) -> dict:
    """report_job on a home that holds the dataset, in --shards shards on --executor (dask: a
    LocalCluster of two worker processes started first, as a long-lived cluster would be).
    Per shard: its step's time, and its load and compute time and its process's peak RSS; the
    coordination overhead is the run's time minus the slowest shard step."""
    import dagster as dg

    from storemon_pipeline.core.settings import settings_from_env
    from storemon_pipeline.core.warehouse import open_warehouse
    from storemon_pipeline.serving.cli import run_report_job
    from storemon_pipeline.serving.serve import prepare_instance

    settings = settings_from_env().replace(home=Path(args.home), reports_dir_override=Path(args.home) / "reports")
    os.environ.update(prepare_instance(settings))
    snapshot = open_warehouse(settings).pin_snapshot()
    cluster = None
    if args.executor == "dask":
        from dask.distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
    try:
        started = time.perf_counter()
        run_id, _ = run_report_job(
            settings, snapshot, args.shards, args.executor, cluster.scheduler_address if cluster else None
        )
        seconds = time.perf_counter() - started
    finally:
        if cluster:
            cluster.close()
    with dg.DagsterInstance.get() as instance:
        logs = instance.all_logs(run_id)
        step_times: dict[str, dict] = {}
        for entry in logs:
            kind = entry.dagster_event_type
            if entry.step_key and kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS):
                step_times.setdefault(entry.step_key, {})[kind.value] = entry.timestamp
        run_events = [
            entry.timestamp
            for entry in logs
            if entry.dagster_event_type in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS)
        ]
        metadata = instance.get_latest_materialization_event(dg.AssetKey("store_report")).asset_materialization.metadata
    durations = {key: times["STEP_SUCCESS"] - times["STEP_START"] for key, times in step_times.items()}
    shard_steps = [seconds for key, seconds in durations.items() if key.startswith("report.compute_report_shard")]
    run_seconds = max(run_events) - min(run_events)
    shards = [dict(row.data) for row in metadata["shard_timings"].value.records]
    return {
        "seconds": seconds,
        "run_seconds": run_seconds,
        "slowest_shard_step_seconds": max(shard_steps),
        "coordination_seconds": run_seconds - max(shard_steps),
        "shards": shards,
        "shard_step_seconds": sorted(shard_steps),
        "pin_step_seconds": durations["report.pin_report_snapshot"],
        "write_step_seconds": durations["report.write_report"],
        "stores": metadata["dagster/row_count"].value,
        "peak_rss_mb_of_shard_processes": max(shard["peak_rss_mb"] for shard in shards),
    }


def floor(args: argparse.Namespace) -> dict:
    from benchmarks.floor import floor_report

    return floor_report(Path(args.source).resolve(), Path(args.out))


def postgres_floor(args: argparse.Namespace) -> dict:
    from benchmarks.postgres_floor import postgres_round_trip

    return postgres_round_trip(Path(args.source).resolve(), args.warehouse)


def calibration(args: argparse.Namespace) -> dict:
    """The extended report's interval coverage against generated truth (core/calibration.py)."""
    import tempfile

    from storemon_pipeline.core import calibration as storemon_calibration
    from storemon_pipeline.core.sample import TRUTH_FAMILIES

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="storemon-calibration-") as scratch:
        tables = [
            storemon_calibration.calibrate(family, args.stores, args.seed, Path(scratch) / family)
            for family in TRUTH_FAMILIES
        ]
    rows = [row for table in tables for row in table.to_dict("records")]
    return {"seconds": time.perf_counter() - started, "stores": args.stores, "seed": args.seed, "rows": rows}


STEPS = {
    "ingest": ingest,
    "report": report,
    "cli": cli,
    "baseline": baseline,
    "floor": floor,
    "postgres_floor": postgres_floor,
    "sharded": sharded,
    "calibration": calibration,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--source")
    parser.add_argument("--home")
    parser.add_argument("--out")
    parser.add_argument("--stores", type=int, default=300)
    parser.add_argument("--storemon-csv")
    parser.add_argument(
        "--warehouse", help="cli: a postgresql:// URL instead of the embedded file; postgres_floor: an empty database's"
    )
    parser.add_argument("--shards", type=int, default=1, help="sharded: the number of store shards")
    parser.add_argument("--executor", default="in_process", help="sharded: in_process, multiprocess or dask")
    parser.add_argument("--seed", type=int, default=3, help="calibration: the generated stores' seed")
    args = parser.parse_args()
    figures = STEPS[args.step](args)
    figures.setdefault("peak_rss_mb", peak_rss_mb())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
