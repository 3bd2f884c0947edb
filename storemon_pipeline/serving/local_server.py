"""`make run` on free loopback ports with a temporary home, for the tests and the benchmark."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
from dagster_graphql import DagsterGraphQLClient

from storemon_pipeline.core.settings import CODE_LOCATION_NAME, DEFAULT_SOURCE_DIR, REPO_ROOT, Settings

HOST = "127.0.0.1"
STOREMON = Path(sys.executable).parent / "storemon"

RUNS_QUERY = """
query StoremonTestRuns($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId jobName status tags { key value } } } }
}
"""

SENSOR_TICKS_QUERY = """
query StoremonTestSensorTicks($selector: SensorSelector!, $after: Float) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(afterTimestamp: $after, limit: 10) { status timestamp } } }
  }
}
"""
# workspace.yaml names the location, so GraphQL clients have one stable selector.
SENSOR_SELECTOR = {
    "repositoryLocationName": CODE_LOCATION_NAME,
    "repositoryName": "__repository__",
    "sensorName": "report_on_new_polls",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def copy_sample_sources(target: Path) -> Path:
    """The bundled sample with the polls uncompressed, so tests can append new polls."""
    target.mkdir(parents=True)
    for source in DEFAULT_SOURCE_DIR.iterdir():
        if source.name.endswith(".csv.gz"):
            with gzip.open(source, "rb") as compressed, open(target / source.name.removesuffix(".gz"), "wb") as plain:
                shutil.copyfileobj(compressed, plain)
        else:
            shutil.copy(source, target / source.name)
    return target


@dataclass
class StoremonServer:
    """`python -m storemon_pipeline.serving.serve` (what `make run` runs), started and stopped by a test."""

    paths: Settings
    dagster_port: int
    api_port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STOREMON_HOME": str(self.paths.home),
            "STOREMON_SOURCE_DIR": str(self.paths.source_dir),
            "STOREMON_WAREHOUSE": self.paths.warehouse,
            "STOREMON_HOST": HOST,
            "STOREMON_DAGSTER_PORT": str(self.dagster_port),
            "STOREMON_API_PORT": str(self.api_port),
            **({"STOREMON_REPORTS_DIR": str(self.paths.reports_dir)} if self.paths.reports_dir_override else {}),
            **self.extra_env,
        }

    @property
    def output(self) -> str:
        return (self.paths.home / "serve.out").read_text()

    def start(self, timeout: float = 240) -> None:
        self.paths.home.mkdir(parents=True, exist_ok=True)
        with open(self.paths.home / "serve.out", "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "storemon_pipeline.serving.serve"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while "storemon: ready" not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"storemon did not come up:\n{self.output}\n{self.logs()}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def logs(self) -> str:
        log_dir = self.paths.home / "logs"
        return (
            "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(log_dir.glob("*.log")))
            if log_dir.exists()
            else ""
        )

    def graphql(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient(HOST, port_number=self.dagster_port)

    def runs(self, tags: dict[str, str] | None = None) -> list[dict]:
        filter_ = {"tags": [{"key": key, "value": value} for key, value in (tags or {}).items()]}
        return self.graphql()._execute(RUNS_QUERY, {"filter": filter_})["runsOrError"]["results"]

    def wait_for_sensor_ticks(self, after: float, count: int = 2, timeout: float = 120) -> None:
        """Until the sensor has finished `count` evaluations that started after `after` (epoch s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.graphql()._execute(SENSOR_TICKS_QUERY, {"selector": SENSOR_SELECTOR, "after": after})
            ticks = state["sensorOrError"]["sensorState"]["ticks"]
            if sum(tick["status"] != "STARTED" for tick in ticks) >= count:
                return
            time.sleep(1)
        raise TimeoutError(f"the sensor did not tick {count} times within {timeout:.0f}s")

    def storemon(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(STOREMON), *args, "--port", str(self.dagster_port)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def trigger_rest(self) -> str:
        response = requests.post(f"{self.api}/trigger_report", timeout=60)
        assert response.status_code == 200, response.text
        return response.json()["report_id"]

    def get_report(self, report_id: str | None) -> requests.Response:
        params = {} if report_id is None else {"report_id": report_id}
        return requests.get(f"{self.api}/get_report", params=params, timeout=60)

    def wait_for_report(self, report_id: str, timeout: float = 300, poll_seconds: float = 0.1) -> requests.Response:
        """Poll until the report is not Running. (A coarse poll adds its own wait to a measured
        report; many fine polls at once take the CPU the runs need.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.get_report(report_id)
            if response.headers.get("X-Report-Status") != "Running":
                return response
            time.sleep(poll_seconds)
        raise TimeoutError(f"report {report_id} still Running after {timeout:.0f}s\n{self.logs()}")

    def trigger_many(self, count: int) -> tuple[float, list[str], list[requests.Response]]:
        """Trigger ``count`` reports at once through REST and wait for all of them.
        Returns (seconds, report ids, final answers)."""
        from concurrent.futures import ThreadPoolExecutor

        started = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            report_ids = list(pool.map(lambda _: self.trigger_rest(), range(count)))
            poll = 0.1 if count == 1 else 0.5
            responses = list(
                pool.map(lambda report_id: self.wait_for_report(report_id, timeout=600, poll_seconds=poll), report_ids)
            )
        return time.perf_counter() - started, report_ids, responses

    def wait_for_run(self, run_id: str, timeout: float = 300) -> str:
        from storemon_pipeline.serving.serve import wait_for_run

        return wait_for_run(self.graphql(), run_id, timeout)

    def wait_until_idle(self, timeout: float = 300) -> None:
        """Until no run is queued or in progress."""
        active = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
        deadline = time.monotonic() + timeout
        while any(run["status"] in active for run in self.runs()):
            if time.monotonic() > deadline:
                raise TimeoutError("runs still in progress")
            time.sleep(0.5)


class PostgresServer:
    """A real PostgreSQL server (the pgserver package) on a unix socket; one database per test."""

    def __init__(self) -> None:
        import pgserver

        self.data_dir = tempfile.mkdtemp(prefix="storemon-pg-")
        self.server = pgserver.get_server(self.data_dir, cleanup_mode="delete")

    def new_database(self) -> str:
        import psycopg2

        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(self.server.get_uri())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        return self.server.get_uri(name)

    def stop(self) -> None:
        # pg_ctl stops whichever postmaster serves the data folder now. (pgserver's cleanup
        # only stops the process it started, and skips a server that was restarted since.)
        from pgserver._commands import pg_ctl

        if (Path(self.server.pgdata) / "postmaster.pid").exists():
            try:
                pg_ctl(
                    ["-w", "stop", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass
        self.server.cleanup()
