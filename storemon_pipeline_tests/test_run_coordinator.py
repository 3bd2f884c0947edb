"""The run coordinator: report runs start at once while there is room; everything else queues."""

import dagster as dg
from dagster._core.definitions.reconstruct import build_reconstructable_job
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_run_for_test

from storemon_pipeline.core.settings import INGEST_JOB_NAME, REPORT_JOB_NAME
from storemon_pipeline.definitions import defs

LIMIT = 2


def instance_with_the_coordinator():
    return dg.instance_for_test(
        overrides={
            "run_coordinator": {"module": "storemon_pipeline.run_coordinator", "class": "StoremonRunCoordinator"},
            # Records launches instead of starting processes (the serving tests start real ones).
            "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
            "concurrency": {"runs": {"max_concurrent_runs": LIMIT}},
        }
    )


def submitted(instance, job_name: str) -> dg.DagsterRunStatus:
    tags = defs.resolve_job_def(job_name).tags
    # (what a run submitted through the webserver carries: where its job is, seen from outside and inside)
    remote = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("storemon"), "__repository__"), job_name
    )
    code = build_reconstructable_job("storemon_pipeline.definitions", "resolved_report_job").get_python_origin()
    run = create_run_for_test(instance, job_name=job_name, tags=tags, remote_job_origin=remote, job_code_origin=code)
    return instance.submit_run(run.run_id, workspace=None).status


def test_report_runs_start_at_once_up_to_the_limit_and_then_queue_in_order():
    with instance_with_the_coordinator() as instance:
        statuses = [submitted(instance, REPORT_JOB_NAME) for _ in range(LIMIT + 1)]
        assert statuses == [dg.DagsterRunStatus.STARTING] * LIMIT + [dg.DagsterRunStatus.QUEUED]
        assert len(instance.run_launcher.queue()) == LIMIT
        # A slot frees, but a run already waits: the next one queues behind it.
        first = instance.run_launcher.queue()[0]
        instance.report_run_failed(instance.get_run_by_id(first.run_id))
        assert submitted(instance, REPORT_JOB_NAME) == dg.DagsterRunStatus.QUEUED


def test_other_runs_always_wait_for_the_daemon():
    with instance_with_the_coordinator() as instance:
        # The ingest's pool (one writer) is enforced when the daemon dequeues it.
        assert submitted(instance, INGEST_JOB_NAME) == dg.DagsterRunStatus.QUEUED
        assert instance.run_launcher.queue() == []
