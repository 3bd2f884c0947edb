"""Faults on purpose: held locks, racing writers, damaged files, a full disk, Postgres down."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storemon_pipeline.core import ingest, report
from storemon_pipeline.core.health import storage_problems
from storemon_pipeline.core.settings import Settings
from storemon_pipeline.core.warehouse import PostgresWarehouse, WarehouseError, open_warehouse
from storemon_pipeline.serving.serve import remove_stale_temp_files

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
STOREMON = str(Path(sys.executable).parent / "storemon")


def storemon_report(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STOREMON, "report", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def loaded(tmp_path) -> Settings:
    """An embedded home with the sample ingested (load 1)."""
    settings = Settings(home=tmp_path / "home", source_dir=SAMPLE)
    ingest.ingest(open_warehouse(settings), SAMPLE, progress=lambda message: None)
    return settings


HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read")
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
"""


def hold(database: Path, mode: str, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(database), mode, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


# --- the embedded file's lock -------------------------------------------------------------


def test_a_report_waits_while_an_ingest_holds_the_file_then_reads_its_snapshot(loaded):
    messages = []
    holder = hold(loaded.database, "write", 2)
    try:
        started = time.monotonic()
        frame, snapshot = report.compute_report(open_warehouse(loaded, progress=messages.append))
        waited = time.monotonic() - started
    finally:
        holder.wait()
    assert waited >= 1 and len(frame) == 300 and snapshot.load_id == 1
    assert messages == [f"{loaded.database} is held by another process; waiting up to 60 s to open it read-only"]


def test_a_report_gives_up_after_the_lock_timeout_naming_the_file(loaded):
    holder = hold(loaded.database, "write", 10)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseError, match=r"storemon.duckdb: still held by another process after 1 s"):
            report.compute_report(open_warehouse(loaded.replace(lock_timeout_seconds=1)))
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


def test_an_ingest_waits_while_readers_finish(loaded):
    messages = []
    holder = hold(loaded.database, "read", 2)
    try:
        outcome = ingest.ingest(open_warehouse(loaded, progress=messages.append), SAMPLE, progress=lambda message: None)
    finally:
        holder.wait()
    assert outcome.load_id == 2 and outcome.errors == []
    assert messages == [f"{loaded.database} is held by another process; waiting up to 60 s to open it for writing"]


def test_readers_share_the_file(loaded):
    holder = hold(loaded.database, "read", 5)
    try:
        with ThreadPoolExecutor(3) as pool:
            reports = list(pool.map(lambda _: storemon_report("--home", str(loaded.home), timeout=60), range(3)))
    finally:
        holder.kill()
        holder.wait()
    assert [done.returncode for done in reports] == [0, 0, 0]
    assert len({done.stdout for done in reports}) == 1


@pytest.mark.parametrize("mode", ["duckdb", "postgres"])
def test_an_ingest_racing_five_reports_each_equal_to_its_snapshot_computed_alone(tmp_path, mode, request):
    warehouse = request.getfixturevalue("postgres_url") if mode == "postgres" else "duckdb"
    source = tmp_path / "source"
    source.mkdir()
    for name in ("business_hours.csv", "timezones.csv"):
        (source / name).write_bytes((SAMPLE / name).read_bytes())
    import pandas as pd

    polls = pd.read_csv(SAMPLE / "store_status.csv.gz", dtype=str)
    late = polls.sample(n=2000, random_state=5)
    polls.drop(late.index).to_csv(source / "store_status.csv", index=False)
    home = tmp_path / "home"
    args = ["--home", str(home), "--warehouse", warehouse]
    assert storemon_report("--data-dir", str(source), *args).returncode == 0
    late.assign(status="inactive").to_csv(source / "store_status.csv", mode="a", header=False, index=False)
    with ThreadPoolExecutor(6) as pool:
        ingesting = pool.submit(storemon_report, "--data-dir", str(source), *args)
        reports = [pool.submit(storemon_report, *args) for _ in range(5)]
        results = [future.result() for future in [ingesting, *reports]]
    assert [done.returncode for done in results] == [0] * 6, [done.stderr for done in results]
    records = {r.report_id: r for r in map(report.ReportRecord.read, (home / "reports").glob("*.json"))}
    assert len(records) == 7  # the first report, the ingest's own, the five racers
    by_output = {}
    for done in results[1:]:
        # Which snapshot did it see? Recompute that one alone: the same bytes.
        matching = [r for r in records.values() if (home / "reports" / f"{r.report_id}.csv").read_text() == done.stdout]
        assert matching
        record = matching[0]
        alone = storemon_report(*args, "--snapshot", str(record.load_id), "--as-of", record.as_of)
        assert alone.stdout == done.stdout
        by_output[record.load_id] = done.stdout
    assert set(by_output) <= {1, 2}


# --- damaged files ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["zero_bytes", "zeroed_header", "random_bytes"])
def test_a_damaged_database_file_is_named_within_seconds(loaded, damage):
    database = loaded.database
    data = bytearray(database.read_bytes())
    if damage == "zero_bytes":
        data = bytearray()
    elif damage == "zeroed_header":
        data[:4096] = bytes(4096)
    else:  # the header survives; every data block after the two headers is garbage
        data[3 * 4096 :] = os.urandom(len(data) - 3 * 4096)
    database.write_bytes(bytes(data))
    started = time.monotonic()
    done = storemon_report("--home", str(loaded.home), timeout=60)
    assert time.monotonic() - started < 15
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: {database}")
    if damage != "random_bytes":
        assert "is not a DuckDB database" in line
        assert storage_problems(loaded) == [
            f"{database}: is not a DuckDB database (damaged or a foreign file); move it away and ingest again"
        ]


# --- a full disk --------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (mounting needs root; CI and this project's machines run as root)."""
    folder = tmp_path / "small"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_mid_ingest_names_the_folder_and_health_reports_it(small_disk, tmp_path):
    settings = Settings(home=small_disk / "home", source_dir=SAMPLE)
    settings.home.mkdir()
    (small_disk / "filler").write_bytes(b"x" * (15 * 1024 * 1024 + 512 * 1024))  # leave about 0.5 MB
    done = storemon_report("--data-dir", str(SAMPLE), "--home", str(settings.home))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert f"no space left in {settings.home}" in line
    assert any("no space left in" in problem for problem in storage_problems(settings))
    # Space again: the next load takes everything; nothing half-written was kept.
    (small_disk / "filler").unlink()
    assert storage_problems(settings) == []
    again = storemon_report("--data-dir", str(SAMPLE), "--home", str(settings.home))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("\n") == 301


# --- Postgres down, and back ----------------------------------------------------------------


def test_an_unreachable_postgres_is_named_with_its_password_elided(tmp_path):
    url = f"postgresql://storemon:s3cret@/storemon?host={tmp_path}&port=1"
    with pytest.raises(WarehouseError) as caught:
        report.compute_report(PostgresWarehouse(url))
    assert "cannot reach the Postgres warehouse at postgresql://storemon:***@/storemon" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    done = storemon_report("--warehouse", url, "--data-dir", str(SAMPLE))
    assert done.returncode == 1 and "s3cret" not in done.stderr
    assert done.stderr.startswith("error: cannot reach the Postgres warehouse at postgresql://storemon:***@")


def test_postgres_restarted_while_idle_the_next_report_works(postgres_server, postgres_url):
    from pgserver._commands import pg_ctl

    first = storemon_report("--data-dir", str(SAMPLE), "--warehouse", postgres_url)
    assert first.returncode == 0, first.stderr
    server = postgres_server.server
    pg_ctl(
        ["-w", "restart", "-m", "fast", "-l", str(server.log)],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=30,
    )
    again = storemon_report("--warehouse", postgres_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout


# --- leftovers of killed writers ------------------------------------------------------------


def test_stale_temp_files_of_killed_writers_are_removed_and_fresh_ones_kept(tmp_path):
    stale, fresh, report_file = tmp_path / ".a.csv.1.tmp", tmp_path / ".b.csv.2.tmp", tmp_path / "c.csv"
    for path in (stale, fresh, report_file):
        path.write_text("x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.csv.2.tmp", "c.csv"]


def test_a_killed_ingest_then_a_report_sees_only_committed_loads(loaded):
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from storemon_pipeline.core import ingest, warehouse
        from storemon_pipeline.core.settings import Settings
        warehouse._record_counts = lambda *a: os.kill(os.getpid(), 9)
        settings = Settings(home=Path({str(loaded.home)!r}), source_dir=Path({str(SAMPLE)!r}))
        ingest.ingest(warehouse.open_warehouse(settings), settings.source_dir)
        """
    )
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == -9
    frame, snapshot = report.compute_report(open_warehouse(loaded))
    assert snapshot.load_id == 1 and len(frame) == 300
