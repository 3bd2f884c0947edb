"""report_on_new_polls: one report per batch of ingest runs that added polls, none otherwise."""

from pathlib import Path

import dagster as dg
import pytest

from storemon_pipeline.sensors import report_on_new_polls
from storemon_pipeline_tests.conftest import materialize_ingestion


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    return report_on_new_polls(dg.build_sensor_context(instance=instance, cursor=cursor))


def run_requests(result: dg.SensorResult | dg.SkipReason) -> list[dg.RunRequest]:
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def append_poll(source_dir: Path, line: str) -> None:
    with open(source_dir / "store_status.csv", "a") as polls:
        polls.write(line + "\n")


@pytest.fixture
def mode() -> str:
    return "duckdb"  # the sensor reads only Dagster's event log; the warehouse does not matter


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_no_ingest_yet_requests_nothing(instance):
    result = tick(instance, None)
    assert isinstance(result, dg.SkipReason)


def test_one_report_after_an_ingest_that_added_rows_and_none_after_one_that_added_nothing(settings, instance):
    first_ingest = materialize_ingestion(settings, instance=instance)
    first = tick(instance, None)
    [request] = run_requests(first)
    assert request.tags["storemon/ingest_run_id"] == first_ingest.run_id
    assert request.tags["storemon/trigger"] == "sensor"

    # Nothing new since the cursor: no request, even though the last ingest added rows.
    assert run_requests(tick(instance, first.cursor)) == []

    # Re-ingesting the unchanged file adds nothing: the cursor moves on, no report.
    materialize_ingestion(settings, instance=instance)
    quiet = tick(instance, first.cursor)
    assert run_requests(quiet) == []
    assert int(quiet.cursor) > int(first.cursor)

    # A new poll lands: exactly one more report, with a new run key.
    append_poll(settings.source_dir, "2,inactive,2023-01-24 11:00:00 UTC")
    materialize_ingestion(settings, instance=instance)
    [again] = run_requests(tick(instance, quiet.cursor))
    assert again.run_key != request.run_key


def test_several_ingests_between_ticks_give_one_report(settings, instance):
    materialize_ingestion(settings, instance=instance)
    append_poll(settings.source_dir, "2,inactive,2023-01-24 11:00:00 UTC")
    materialize_ingestion(settings, instance=instance)
    materialize_ingestion(settings, instance=instance)  # adds nothing
    result = tick(instance, None)
    assert len(run_requests(result)) == 1
    assert run_requests(tick(instance, result.cursor)) == []


def test_the_same_batch_always_gets_the_same_run_key(settings, instance):
    # If the cursor were lost, the daemon's run_key dedupe still launches the batch once.
    materialize_ingestion(settings, instance=instance)
    assert run_requests(tick(instance, None))[0].run_key == run_requests(tick(instance, None))[0].run_key
