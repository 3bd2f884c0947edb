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
    from storemon_pipeline.core.settings import settings_from_env
    from storemon_pipeline.core.warehouse import open_warehouse

    settings = settings_from_env().replace(home=Path(args.home))
    timings = {}
    started = time.perf_counter()
    with storemon_report.ReportComputation(open_warehouse(settings)) as run:
        timings["snapshot_seconds"] = time.perf_counter() - started
        for step in run.STEPS:
            step_started = time.perf_counter()
            run.build(step)
            timings[f"{step}_seconds"] = time.perf_counter() - step_started
        step_started = time.perf_counter()
        record = run.write_report(Path(args.home) / "reports", "benchmark")
        timings["csv_seconds"] = time.perf_counter() - step_started
    return {"seconds": time.perf_counter() - started, "stores": record.row_count, "as_of": record.as_of, **timings}


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


def floor(args: argparse.Namespace) -> dict:
    from benchmarks.floor import floor_report

    return floor_report(Path(args.source).resolve(), Path(args.out))


STEPS = {"ingest": ingest, "report": report, "cli": cli, "baseline": baseline, "floor": floor}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--source")
    parser.add_argument("--home")
    parser.add_argument("--out")
    parser.add_argument("--stores", type=int, default=300)
    parser.add_argument("--storemon-csv")
    parser.add_argument("--warehouse", help="cli: a postgresql:// URL instead of the embedded file")
    args = parser.parse_args()
    figures = STEPS[args.step](args)
    figures.setdefault("peak_rss_mb", peak_rss_mb())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
