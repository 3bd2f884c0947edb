"""The demo feed (STOREMON_DEMO_FEED=1): a sample that ends now and grows by an hour at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from storemon_pipeline.core import ingest
from storemon_pipeline.core.warehouse import open_warehouse
from storemon_pipeline.serving.local_server import StoremonServer, free_port
from storemon_pipeline_tests.conftest import make_settings, table


def newest_poll_in(path) -> datetime:
    last = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[1].decode()
    return datetime.fromisoformat(last.rsplit(",", 1)[1].removesuffix(" UTC"))


def test_the_feed_appends_whole_hours_that_ingestion_reads_incrementally(tmp_path):
    out = tmp_path / "feed"
    feeder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "storemon_pipeline.core.demo_feed",
            "--out",
            str(out),
            "--end",
            "2023-03-01 00:00",
            "--interval-seconds",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert feeder.stdout.readline().startswith("demo feed: sample of 300 stores up to 2023-03-01 00:00:00")
        settings = make_settings(tmp_path / "home", out)
        first = ingest.ingest(open_warehouse(settings), out, progress=lambda message: None).results["store_status"]
        deadline = time.monotonic() + 60
        while newest_poll_in(out / "store_status.csv") < datetime(2023, 3, 1, 3):
            assert time.monotonic() < deadline, "the feed did not append three hours"
            time.sleep(0.2)
    finally:
        os.killpg(feeder.pid, signal.SIGTERM)
        feeder.wait(30)
    second = ingest.ingest(open_warehouse(settings), out, progress=lambda message: None).results["store_status"]
    assert first.rows_rejected == 0 and second.rows_rejected == 0
    assert second.mode == "incremental" and second.rows_added > 0
    # Every appended hour holds polls of that hour only, for the sample's stores.
    [(stores, newest)] = table(
        settings, "SELECT count(DISTINCT store_key), max(timestamp_utc) FROM {wh}.raw_store_polls"
    )
    assert stores == 300 and newest == newest_poll_in(out / "store_status.csv")


@pytest.mark.services
def test_make_run_with_the_demo_feed_serves_data_that_is_fresh(tmp_path):
    settings = make_settings(tmp_path / "home", tmp_path / "unused")
    server = StoremonServer(settings, free_port(), free_port(), extra_env={"STOREMON_DEMO_FEED": "1"})

    def this_hour() -> datetime:
        return datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)

    before = this_hour()
    server.start()
    try:
        # (an hour may turn while the server starts)
        assert any(
            f"storemon: demo feed: the sample up to {hour} UTC" in server.output for hour in {before, this_hour()}
        )
        [(newest,)] = table(settings, "SELECT max(timestamp_utc) FROM {wh}.raw_store_polls")
        assert before - timedelta(hours=1) < newest <= datetime.now(timezone.utc).replace(tzinfo=None)
    finally:
        server.stop()
