"""The run coordinator: report runs start at once while there is room; everything else queues."""

import uuid

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import build_reconstructable_job
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_run_for_test

from storemon_pipeline.core.settings import INGEST_JOB_NAME, REPORT_JOB_NAME
from storemon_pipeline.definitions import defs

LIMIT = 2


def instance_with_the_coordinator(unreachable_run_ids: tuple[str, ...] = ()):
    return dg.instance_for_test(
        overrides={
            "run_coordinator": {"module": "storemon_pipeline.run_coordinator", "class": "StoremonRunCoordinator"},
            # Records launches instead of starting processes (the serving tests start real ones);
            # for these run ids it fails as when the code server cannot be reached.
            "run_launcher": {
                "module": "dagster._core.test_utils",
                "class": "MockedRunLauncher",
                "config": {"bad_user_code_run_ids": list(unreachable_run_ids)},
            },
            "concurrency": {"runs": {"max_concurrent_runs": LIMIT}},
        }
    )


def submitted(instance, job_name: str, run_id: str | None = None) -> dg.DagsterRunStatus:
    tags = defs.resolve_job_def(job_name).tags
    # (what a run submitted through the webserver carries: where its job is, seen from outside and inside)
    remote = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("storemon"), "__repository__"), job_name
    )
    code = build_reconstructable_job("storemon_pipeline.definitions", "resolved_report_job").get_python_origin()
    run = create_run_for_test(
        instance, job_name=job_name, run_id=run_id, tags=tags, remote_job_origin=remote, job_code_origin=code
    )
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


def test_a_report_whose_launch_fails_fails_at_once_and_says_so_to_its_submitter():
    run_id = str(uuid.uuid4())
    with instance_with_the_coordinator(unreachable_run_ids=(run_id,)) as instance:
        # The submitter (the webserver's launchRun, so the REST trigger) gets the error now,
        # rather than a queued run that the daemon fails later.
        with pytest.raises(DagsterUserCodeUnreachableError):
            submitted(instance, REPORT_JOB_NAME, run_id=run_id)
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        # It holds no slot: the next report starts at once.
        assert submitted(instance, REPORT_JOB_NAME) == dg.DagsterRunStatus.STARTING
