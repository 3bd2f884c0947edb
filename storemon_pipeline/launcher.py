"""Dagster's default run launcher, plus a health check so run monitoring can fail dead runs.

The default launcher starts each run in a process on this machine but cannot tell whether
that process still lives; a run worker killed by the OS (out of memory, kill -9, a full
disk that took the process down) would stay STARTED forever and hold its concurrency slot.
The worker's pid is in the run's first engine event; a pid that is gone (or a zombie) is a
dead worker, and run monitoring then marks the run failed and frees its slot.

On several machines use a launcher that already reports health (Docker, Kubernetes).
"""

from pathlib import Path

from dagster import DagsterEventType, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus


def process_is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class StoremonRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pids = [
            int(event.dagster_event.engine_event_data.metadata["pid"].value)
            for event in self._instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
            if event.dagster_event
            and event.dagster_event.engine_event_data
            and "pid" in event.dagster_event.engine_event_data.metadata
        ]
        if not pids:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not reported its pid yet")
        if process_is_alive(pids[-1]):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker process {pids[-1]} is gone")
