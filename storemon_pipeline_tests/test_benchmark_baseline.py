"""The benchmark's pandas baseline computes the same report as storemon (else the speed ratio means nothing)."""

import io
import subprocess

import pandas as pd

from benchmarks.baseline import baseline_report, load_sources
from storemon_pipeline.settings import DEFAULT_SOURCE_DIR
from storemon_pipeline_tests.test_report import STOREMON


def test_baseline_equals_storemon_on_the_sample():
    done = subprocess.run(
        [str(STOREMON), "report", "--data-dir", str(DEFAULT_SOURCE_DIR)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    storemon = pd.read_csv(io.StringIO(done.stdout), dtype={"store_id": str})
    polls, hours, zones = load_sources(DEFAULT_SOURCE_DIR)
    baseline = baseline_report(polls, hours, zones)
    assert list(baseline["store_id"]) == list(storemon["store_id"])
    difference = (baseline.set_index("store_id") - storemon.set_index("store_id")).abs()
    assert difference.max().max() <= 0.011, difference.max()
