"""Dagster's run queue, except that a report run starts at once when there is room.

The queue is checked by the daemon about once a second, so a queued run waits half a
second on average before it starts: a quarter of a sample report's latency. A run tagged
``storemon/launch: immediate`` (report_job's runs) is launched by whoever submits it (the
webserver for the UI, GraphQL and REST; the daemon for sensors) while fewer runs than
``concurrency.runs.max_concurrent_runs`` are in progress and none waits in the queue, as
Dagster's default coordinator would; otherwise it waits in the queue like any other run.
Other runs always queue, so the ingest's pool (one writer at a time), which the daemon
enforces at dequeue, still holds.

Two submissions at the same instant can both see room, so a burst can pass the limit by
the runs submitted together; the daemon then launches no queued run until the count is
under it again.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.run_coordinator.base import SubmitRunContext
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES

IMMEDIATE_LAUNCH_TAGS = {"storemon/launch": "immediate"}


class StoremonRunCoordinator(dg.QueuedRunCoordinator):
    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        if (
            run.status == dg.DagsterRunStatus.NOT_STARTED
            and run.tags.items() >= IMMEDIATE_LAUNCH_TAGS.items()
            and self._has_room()
        ):
            self._instance.launch_run(run.run_id, context.workspace)
            return self._instance.get_run_by_id(run.run_id)
        return super().submit_run(context)

    def _has_room(self) -> bool:
        """Fewer runs in progress than the limit, and none waiting in the queue (which keeps
        its order: a run never starts ahead of one queued before it)."""
        if self._instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
            return False
        limit = self._instance.get_concurrency_config().run_queue_config.max_concurrent_runs
        return limit == -1 or self._instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)) < limit
