"""Where a run's steps execute, chosen per run under ``execution.config``:

    in_process: {}                                                # the default: no process to spawn
    multiprocess: {max_concurrent: 2}                             # a child process per step
    dask: {cluster: {existing: {address: "tcp://scheduler:8786"}}}  # or {local: {n_workers: 2}}

The report's shards are a dynamic fan-out (their count is run config). dagster-dask's own
executor does not run dynamic steps: it plans every step before the run starts, and mapped
steps only exist once the step that maps them has run (dagster-io/dagster#9785). So the dask
choice submits dagster-dask's own per-step task (``query_on_dask_worker``) to the cluster as
steps become ready, and Dagster's ``ActiveExecution`` decides readiness, as it does for the
multiprocess executor. Dask schedules and runs the steps; Dagster orders them.

On Kubernetes (STOREMON_EXECUTOR=k8s) the code location uses ``dagster_k8s.k8s_job_executor``
instead (README: Production).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.retries import RetryMode
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster_shared.serdes import deserialize_value, serialize_value

# dagster-dask's cluster choices that need no extra package (the others need dask-jobqueue,
# dask-yarn or dask-kubernetes).
DASK_CONFIG = dg.Field(
    {
        "cluster": dg.Field(
            dg.Selector(
                {
                    "existing": dg.Field({"address": dg.StringSource}, description="A running Dask scheduler."),
                    "local": dg.Field(
                        dg.Permissive(), description="A LocalCluster for this run (its arguments, e.g. n_workers)."
                    ),
                }
            ),
            default_value={"local": {}},
        )
    }
)


def _requirements(executor_config):
    return multiple_process_executor_requirements() if "in_process" not in executor_config else []


@dg.executor(
    name="storemon_executor",
    config_schema=dg.Field(
        dg.Selector({"in_process": IN_PROC_CONFIG, "multiprocess": MULTI_PROC_CONFIG, "dask": DASK_CONFIG}),
        default_value={"in_process": {}},
    ),
    requirements=_requirements,
)
def storemon_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """In process (default), multiprocess or on a Dask cluster: see the module's docstring."""
    ((kind, config),) = init_context.executor_config.items()
    if kind == "in_process":
        return _core_in_process_executor_creation(config)
    if kind == "multiprocess":
        return _core_multiprocess_executor_creation(config)
    ((cluster_type, cluster_config),) = config["cluster"].items()
    return DaskStepExecutor(cluster_type, cluster_config)


def code_location_executor() -> dg.ExecutorDefinition:
    """storemon_executor, or on Kubernetes (STOREMON_EXECUTOR=k8s) dagster-k8s's
    k8s_job_executor: each step a pod, the shards too (it runs dynamic steps)."""
    from storemon_pipeline.core.settings import settings_from_env

    if settings_from_env().executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return storemon_executor


def execution_config(executor: str, dask_address: str | None = None, workers: int = 2) -> dict:
    """The run config's ``execution`` section for an executor name (the CLI's --executor)."""
    if executor == "dask":
        cluster = {"existing": {"address": dask_address}} if dask_address else {"local": {"n_workers": workers}}
        return {"config": {"dask": {"cluster": cluster}}}
    if executor == "multiprocess":
        return {"config": {"multiprocess": {"max_concurrent": workers}}}
    return {"config": {"in_process": {}}}


class DaskStepExecutor(dg.Executor):
    """Each ready step as a task on a Dask cluster (see the module's docstring)."""

    def __init__(self, cluster_type: str, cluster_config: dict):
        self.cluster_type, self.cluster_config = cluster_type, dict(cluster_config or {})

    @property
    def retries(self) -> RetryMode:
        return RetryMode.DISABLED

    def _cluster(self):
        if self.cluster_type == "existing":
            return self.cluster_config["address"]
        from dask.distributed import LocalCluster

        # One thread per worker: a Dagster step is not thread-safe (dagster-dask does the same).
        return LocalCluster(**{"threads_per_worker": 1, "processes": True, **self.cluster_config})

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        from dagster_dask.executor import get_dask_resource_requirements
        from dask.distributed import Client, wait

        cluster = self._cluster()
        run = plan_context.dagster_run
        instance_ref = plan_context.instance.get_ref()
        try:
            with Client(cluster) as client, ActiveExecution(execution_plan, retry_mode=self.retries) as active:
                yield DagsterEvent.engine_event(
                    plan_context,
                    f"Executing steps on the Dask cluster at {client.scheduler.address}",
                    EngineEventData(metadata={"dashboard": client.dashboard_link or ""}),
                )
                running = {}
                while not active.is_complete:
                    for step in active.get_steps_to_execute():
                        future = client.submit(
                            run_step_on_worker,
                            [],
                            plan_context.reconstructable_job,
                            run,
                            plan_context.run_config,
                            [step.key],
                            instance_ref,
                            active.get_known_state(),
                            # Unique per run and step: Dask keeps results by key.
                            key=f"{run.run_id}.{step.key}.{uuid.uuid4().hex[:8]}",
                            resources=get_dask_resource_requirements(step.tags),
                            pure=False,
                        )
                        running[future] = step.key
                    if running:
                        done = wait(list(running), return_when="FIRST_COMPLETED").done
                        for future in done:
                            step_key = running.pop(future)
                            yield from self._step_events(plan_context, active, future, step_key)
                            active.verify_complete(plan_context, step_key)
                    yield from active.plan_events_iterator(plan_context)
        finally:
            if not isinstance(cluster, str):
                cluster.close()

    def _step_events(self, plan_context, active, future, step_key) -> Iterator[DagsterEvent]:
        try:
            events = future.result()
        except Exception:
            # The task itself failed (a worker died, a result that did not pickle): the step fails.
            error = serializable_error_info_from_exc_info(sys.exc_info())
            step_context = plan_context.for_step(active.get_step_by_key(step_key))
            event = self.log_failure_or_retry_event_after_error(step_context, error, active.get_known_state())
            active.handle_event(event)
            yield event
            return
        for event in deserialize_value(events, as_type=list):
            active.handle_event(event)
            yield event


def run_step_on_worker(*args) -> str:
    """dagster-dask's task for one step, its events serialized: Dask can size a string (a list
    of DagsterEvents it cannot, and warns on every result)."""
    from dagster_dask.executor import query_on_dask_worker

    return serialize_value(list(query_on_dask_worker(*args)))
