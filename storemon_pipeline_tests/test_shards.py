"""report_job in store shards: the same CSV, byte for byte, for any number of shards and on
each executor (in process, multiprocess, and a real Dask cluster: a scheduler and two worker
processes on loopback, against the Postgres warehouse). The hypothesis cases for the shards
are in test_report.py (test_both_warehouses_give_byte_identical_reports_on_random_stores)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pydantic
import pytest

from storemon_pipeline.assets.report import ReportConfig
from storemon_pipeline.core import report
from storemon_pipeline.core.settings import Settings
from storemon_pipeline.core.warehouse import StoreRange, open_warehouse, store_ranges
from storemon_pipeline.executors import execution_config
from storemon_pipeline.serving.serve import sqlalchemy_url
from storemon_pipeline_tests.conftest import POLLS_WITH_IDS

STOREMON = str(Path(sys.executable).parent / "storemon")
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def storemon(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [STOREMON, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory) -> tuple[Path, bytes]:
    """A home with the sample ingested, and its report computed in one piece (no Dagster)."""
    home = tmp_path_factory.mktemp("shards") / "home"
    out = home.parent / "whole.csv"
    storemon("report", "--data-dir", str(SAMPLE), "--home", str(home), "--out", str(out))
    return home, out.read_bytes()


@pytest.fixture(scope="module")
def whole_extended(sample_home) -> bytes:
    home, _ = sample_home
    out = home.parent / "whole.extended.csv"
    storemon("report", "--home", str(home), "--extended", "--out", str(out))
    return out.read_bytes()


def shards_report(home: Path, shards: int, executor: str, *extra: str, env: dict | None = None) -> bytes:
    out = home.parent / f"shards-{shards}-{executor}.csv"
    storemon(
        "report",
        "--home",
        str(home),
        "--shards",
        str(shards),
        "--executor",
        executor,
        "--out",
        str(out),
        *extra,
        env=env,
    )
    return out.read_bytes()


def test_store_ranges_cover_every_id_once():
    ranges = store_ranges(["a", "m", "t"], 3)
    assert [(r.first, r.end) for r in ranges] == [(None, "m"), ("m", "t"), ("t", None)]
    assert {r.count for r in ranges} == {3}
    # Fewer stores than shards: one shard per store; none: one shard of everything.
    assert len(store_ranges(["a", "b"], 7)) == 2
    assert store_ranges([], 7) == [StoreRange(index=0, count=1)]
    assert StoreRange(0, 2, None, "m'x").condition() == "store_id < 'm''x'"


def test_shards_partition_the_sample_stores_in_order(sample_home):
    home, _ = sample_home
    warehouse = open_warehouse(Settings(home=home, source_dir=SAMPLE))
    snapshot = warehouse.pin_snapshot()
    for count in (1, 2, 7):
        ranges = warehouse.shards(snapshot, count)
        sizes = [
            warehouse.query(f"SELECT count(DISTINCT store_id) FROM {POLLS_WITH_IDS} WHERE {r.condition()}")[0][0]
            for r in ranges
        ]
        assert len(ranges) == count and sum(sizes) == 300
        assert max(sizes) - min(sizes) <= 1  # ntile: equal store counts


@pytest.mark.parametrize("shards", [1, 2, 7])
def test_in_process_shards_give_the_same_csv(sample_home, whole_extended, shards):
    home, whole = sample_home
    assert shards_report(home, shards, "in_process") == whole
    # The extended report too: the shards share one interval model.
    extended = home.parent / f"shards-{shards}.extended.csv"
    storemon("report", "--home", str(home), "--shards", str(shards), "--extended", "--out", str(extended))
    assert extended.read_bytes() == whole_extended


def test_shards_fit_the_interval_model_on_the_same_sample_as_the_whole_report(sample_home, monkeypatch):
    """With more stores than the model's sample (here 300 > 80), the whole report fits the model
    on the sample among all its stores, a sharded one on exactly the sample's slice of the
    snapshot: the same model, the same extended rows."""
    home, _ = sample_home
    monkeypatch.setattr(report, "MODEL_SAMPLE_STORES", 80)
    warehouse = open_warehouse(Settings(home=home, source_dir=SAMPLE))
    snapshot = warehouse.pin_snapshot()
    whole = report.compute_shard(warehouse, snapshot)
    ranges = warehouse.shards(snapshot, 3)
    assert ranges[0].polled_stores == 300
    model = report.sample_interval_model(warehouse, snapshot, 300)
    sampled = sum(
        1
        for (_,) in warehouse.query(
            f"SELECT DISTINCT store_id FROM {POLLS_WITH_IDS} WHERE {report.model_sample(300).condition()}"
        )
    )
    assert 40 <= sampled <= 130  # about 80 of the 300 stores
    parts = [report.compute_shard(warehouse, snapshot, shard, model=model) for shard in ranges]
    assert b"".join(part.file_rows["extended"] for part in parts) == whole.file_rows["extended"]
    # ... and the sample matters: a model fitted on all 300 stores gives other intervals.
    monkeypatch.setattr(report, "MODEL_SAMPLE_STORES", 5000)
    assert report.compute_shard(warehouse, snapshot).file_rows["extended"] != whole.file_rows["extended"]


def test_both_warehouses_sample_the_same_stores_for_the_interval_model(sample_home, postgres_url):
    """The model's hash sample (md5 of the id against a hex threshold) selects the same stores
    in Postgres as in DuckDB: a sharded run on either fits the same model."""
    home, _ = sample_home
    storemon("report", "--data-dir", str(SAMPLE), "--home", str(home.parent / "pg-home"), "--warehouse", postgres_url)
    condition = report.model_sample(4 * report.MODEL_SAMPLE_STORES).condition()  # a quarter of the stores
    sampled = {}
    for kind, settings in (
        ("duckdb", Settings(home=home, source_dir=SAMPLE)),
        ("postgres", Settings(home=home.parent / "pg-home", source_dir=SAMPLE, warehouse=postgres_url)),
    ):
        rows = open_warehouse(settings).query(f"SELECT DISTINCT store_id FROM {POLLS_WITH_IDS} WHERE {condition}")
        sampled[kind] = {store_id for (store_id,) in rows}
    assert 40 <= len(sampled["duckdb"]) <= 110 and sampled["duckdb"] == sampled["postgres"]


def test_multiprocess_shards_give_the_same_csv(sample_home):
    home, whole = sample_home
    assert shards_report(home, 7, "multiprocess") == whole


def test_a_dask_cluster_computes_the_shards_from_the_postgres_warehouse(tmp_path, postgres_url, monkeypatch):
    from dask.distributed import Client, LocalCluster

    home = tmp_path / "home"
    whole = tmp_path / "whole.csv"
    storemon("report", "--data-dir", str(SAMPLE), "--home", str(home), "--warehouse", postgres_url, "--out", str(whole))
    # The workers are other machines' stand-ins: they get storemon's settings from their own
    # environment (the warehouse URL and where reports go), as in production.
    env = {
        "STOREMON_HOME": str(home),
        "STOREMON_WAREHOUSE": postgres_url,
        "STOREMON_REPORTS_DIR": str(home / "reports"),
        "DAGSTER_HOME": str(home / "dagster"),
        "DAGSTER_POSTGRES_URL": sqlalchemy_url(postgres_url),  # the Dagster instance shares the database
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Workers inherit an ignored SIGTERM (a test run started with & in some shells): Dagster's
    # log capture then waits 30 s for each `tail` it terminates, after every step.
    ignored = signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
    finally:
        if ignored:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
            assert len(worker_pids) == 2 and os.getpid() not in worker_pids
            for shards in (1, 2, 7):
                csv = shards_report(home, shards, "dask", "--dask-address", cluster.scheduler_address, env=env)
                assert csv == whole.read_bytes()
            # The last run's shard steps ran in the cluster's worker processes, on both of them.
            instance = dg.DagsterInstance.from_config(str(home / "dagster"))
            (run,) = instance.get_runs(limit=1)
            step_pids = {
                event.dagster_event.pid
                for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
                if event.step_key.startswith("report.compute_report_shard")
            }
            assert step_pids == worker_pids
            instance.dispose()
    finally:
        cluster.close()


def test_the_shard_count_is_checked():
    done = subprocess.run([STOREMON, "report", "--shards", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and "'0' is not a positive integer" in done.stderr
    from storemon_pipeline.definitions import resolved_report_job

    job = resolved_report_job()
    config = dg.validate_run_config(job, {"ops": {"report": {"config": {"shards": 7}}}})
    assert config["ops"]["report.pin_report_snapshot"]["config"]["shards"] == 7
    # Dagster's config types have no bounds: the step's config object refuses 0 when the run starts.
    with pytest.raises(pydantic.ValidationError, match="shards"):
        ReportConfig(shards=0)


def test_execution_config_names_each_executor():
    assert execution_config("in_process") == {"config": {"in_process": {}}}
    assert execution_config("multiprocess", workers=3) == {"config": {"multiprocess": {"max_concurrent": 3}}}
    assert execution_config("dask", "tcp://127.0.0.1:1") == {
        "config": {"dask": {"cluster": {"existing": {"address": "tcp://127.0.0.1:1"}}}}
    }


def test_an_incomplete_set_of_shards_is_refused():
    with pytest.raises(report.ReportError, match="incomplete"):
        report.AssembledReport([_shard(StoreRange(1, 2))])


def _shard(stores: StoreRange) -> report.ShardResult:
    return report.ShardResult(
        stores=stores,
        snapshot=None,
        report_rows=b"",
        row_count=0,
        stores_down_in_last_hour=0,
        preview=[],
        least_evidence=[],
        open_week_stores=0,
        wide_week_intervals=0,
        coverage=report.Coverage(0, 0, 0, 0, 0, 0, 0),
        violations={},
        file_rows={},
        file_row_counts={},
        load_seconds=0,
        compute_seconds=0,
        peak_rss_mb=0,
    )


def test_shards_hand_off_through_a_reports_store_at_a_url(sample_home, tmp_path):
    """STOREMON_REPORTS_DIR as a URL: the report, its history row, the latest tables and the
    steps' hand-offs all go through fsspec (file:// here; s3:// in production), and the run's
    hand-offs are removed once the report holds them."""
    home, whole = sample_home
    store = tmp_path / "store"
    out = tmp_path / "report.csv"
    env = {"STOREMON_REPORTS_DIR": f"file://{store}"}
    storemon("report", "--home", str(home), "--shards", "3", "--executor", "in_process", "--out", str(out), env=env)
    assert out.read_bytes() == whole
    (csv,) = [path for path in store.glob("*.csv") if path.name.count(".") == 1]
    assert csv.read_bytes() == whole
    assert json.loads(csv.with_suffix(".json").read_text())["row_count"] == 300
    assert sorted(path.name for path in (store / "latest").iterdir()) == [
        "localized_business_hours.parquet",
        "status_intervals.parquet",
    ]
    assert (store / ".steps").is_dir() and not any((store / ".steps").iterdir())


def test_the_documented_kubernetes_run_config_is_accepted(tmp_path):
    """STOREMON_EXECUTOR=k8s puts dagster-k8s's k8s_job_executor under report_job, and the
    README's run config for it is valid (checked by Dagster's config system; no cluster here)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("<!-- k8s-run-config")[1].split("```yaml\n")[1].split("```")[0]
    script = (
        "import json, sys, yaml, dagster as dg\n"
        "from storemon_pipeline.definitions import resolved_report_job\n"
        "job = resolved_report_job()\n"
        "config = dg.validate_run_config(job, yaml.safe_load(sys.stdin.read()))  # raises if invalid\n"
        "shards = config['ops']['report.pin_report_snapshot']['config']['shards']\n"
        "print(json.dumps([job.executor_def.name, config['execution']['k8s']['job_image'], shards]))\n"
    )
    env = {**os.environ, "STOREMON_EXECUTOR": "k8s", "STOREMON_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], input=block, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["k8s", "registry.internal/storemon:1", 16]
    # Anything else is refused in one line.
    env["STOREMON_EXECUTOR"] = "kubernetes"
    done = subprocess.run([STOREMON, "report"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and "STOREMON_EXECUTOR='kubernetes' is not one of local, k8s" in done.stderr
