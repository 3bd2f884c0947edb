"""Start everything a user needs, and stop all of it on Ctrl-C.

    python -m storemon_pipeline.serving.serve        # what `make run` does

Starts the Dagster webserver and daemon (instance under ``$STOREMON_HOME/dagster``) and the
REST API, all on 127.0.0.1; ingests the source folder through a real ``ingest_job`` run (the
``report_on_new_polls`` sensor then computes a first report, whose id and URL it prints),
and prints where everything is. Ports: ``STOREMON_DAGSTER_PORT`` (3000) and
``STOREMON_API_PORT`` (8000); if one is taken it says so and starts nothing.
``STOREMON_DEMO_FEED=1`` adds the demo feed (core/demo_feed.py). Each child runs in its own
session, so a signal to this process is forwarded to whole process trees, which are then
waited for.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from storemon_pipeline.core.settings import (
    CODE_LOCATION_NAME,
    REPO_ROOT,
    SOURCE_FILE_VARIABLES,
    Settings,
    is_local,
    settings_from_env,
)

INSTANCE_CONFIG = Path(__file__).parent.parent / "dagster.yaml"
BIN = Path(sys.executable).parent


# Production mode: Dagster's runs, events and schedules in the warehouse's Postgres database,
# so webservers, daemons and run workers on several machines share one instance.
# (DAGSTER_POSTGRES_URL is STOREMON_WAREHOUSE for SQLAlchemy's psycopg2 driver, which
# dagster-postgres brings; SQLAlchemy 2.1 would otherwise pick psycopg 3 for postgresql://.)
POSTGRES_STORAGE = """
storage:
  postgres:
    postgres_url:
      env: DAGSTER_POSTGRES_URL
"""
STALE_TEMP_SECONDS = 3600


def instance_config(settings: Settings) -> str:
    """The shipped dagster.yaml, plus Postgres storage when the warehouse is Postgres."""
    config = INSTANCE_CONFIG.read_text()
    return config if settings.embedded else config + POSTGRES_STORAGE


def remove_stale_temp_files(folder: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Hidden temp files that a killed writer left behind (a live writer's are newer)."""
    removed = []
    cutoff = time.time() - older_than
    for path in folder.glob(".*.tmp") if folder.is_dir() else []:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


def prepare_instance(settings: Settings) -> dict[str, str]:
    """Create the home folder with its Dagster instance; return the environment for children."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    (settings.dagster_home / "dagster.yaml").write_text(instance_config(settings))
    postgres = {} if settings.embedded else {"DAGSTER_POSTGRES_URL": sqlalchemy_url(settings.warehouse)}
    return postgres | {
        **os.environ,
        "STOREMON_HOME": str(settings.home),
        "STOREMON_SOURCE_DIR": str(settings.source_dir),
        # Explicit source files, as absolute paths (the children run in the repository).
        **{
            variable: os.pathsep.join(str(path) for path in settings.files[source])
            for source, variable in SOURCE_FILE_VARIABLES.items()
            if source in settings.files
        },
        "STOREMON_WAREHOUSE": settings.warehouse,
        "STOREMON_REPORTS_DIR": str(settings.reports_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
    }


@dataclass
class Services:
    """A set of child process trees started and stopped together."""

    env: Mapping[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    restarts: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (failures, restart at)

    def start(self, name: str, argv: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.commands[name] = argv
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=dict(self.env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def supervise(self, say=print) -> None:
        """Restart any child that died, with backoff (1 s, doubling, at most 60 s)."""
        now = time.monotonic()
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                if name in self.restarts and now - self.restarts[name][1] > 120:
                    del self.restarts[name]  # up for two minutes: forget earlier failures
                continue
            failures, restart_at = self.restarts.get(name, (0, 0.0))
            if restart_at == 0.0 or restart_at < process_exit_seen(process):
                delay = min(60.0, 2.0**failures)
                self.restarts[name] = (failures + 1, now + delay)
                _signal_group(process, signal.SIGKILL)  # its children (code server, run workers)
                say(
                    f"storemon: {name} exited with code {process.returncode}; restarting in {delay:.0f} s "
                    f"(see {self.log_dir / (name + '.log')})",
                    flush=True,
                )
            elif now >= restart_at:
                self.start(name, self.commands[name])
                self.restarts[name] = (failures, now)
                say(f"storemon: {name} restarted", flush=True)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}; see {self.log_dir / (name + '.log')}"
                )

    def stop(self, timeout: float = 20) -> None:
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        # Children of a dagster process (code servers, run workers) share its session.
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def process_exit_seen(process: subprocess.Popen) -> float:
    """When this Popen's exit was first noticed (monotonic seconds)."""
    if not hasattr(process, "_storemon_exit_seen"):
        process._storemon_exit_seen = time.monotonic()
    return process._storemon_exit_seen


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for_http(url: str, services: Services, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


LOCATIONS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def wait_for_code_server(socket_path: Path, services: Services, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        if socket_path.exists():
            check = subprocess.run(
                [str(BIN / "dagster"), "api", "grpc-health-check", "--socket", str(socket_path)],
                capture_output=True,
                timeout=60,
            )
            if check.returncode == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the code server did not answer on {socket_path} within {timeout:.0f}s")


def wait_for_code_location(host: str, port: int, services: Services, timeout: float = 300) -> None:
    """Until the webserver has loaded storemon's code (it answers HTTP before that)."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient(host, port_number=port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        entries = client._execute(LOCATIONS_QUERY)["workspaceOrError"].get("locationEntries") or []
        states = [(entry["locationOrLoadError"] or {"__typename": "loading"}) for entry in entries]
        for state in states:
            if state["__typename"] == "PythonError":
                raise RuntimeError(f"the code location failed to load: {state['message']}")
        if states and all(state["__typename"] == "RepositoryLocation" for state in states):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the code location did not load within {timeout:.0f}s")


def wait_for_run(client, run_id: str, timeout: float = 600) -> str:
    from dagster import DagsterRunStatus

    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in finished:
            return status.value
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f}s")


def create_instance_storage() -> None:
    """Create (or migrate) the instance's tables once, before the processes that share them
    start: several processes creating them at once collide."""
    from dagster import DagsterInstance

    with DagsterInstance.get():
        pass


def code_server_workspace(settings: Settings) -> Path:
    """A workspace that points the webserver and the daemon at storemon's own code server."""
    workspace = settings.dagster_home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        f"      socket: {settings.code_server_socket}\n"
        f"      location_name: {CODE_LOCATION_NAME}\n"
    )
    return workspace


def start_storemon(services: Services, settings: Settings) -> None:
    """Start the code server, the webserver, the daemon and the REST API; return once all answer."""
    host, dagster_port, api_port = settings.host, settings.dagster_port, settings.api_port
    create_instance_storage()
    settings.code_server_socket.unlink(missing_ok=True)
    services.start(
        "code-server",
        [sys.executable, "-m", "storemon_pipeline.serving.code_server", "--socket", str(settings.code_server_socket)],
    )
    # The daemon keeps a location that failed to load until its next refresh, and would fail
    # the first runs it dequeues meanwhile: it starts only once the code server answers.
    wait_for_code_server(settings.code_server_socket, services)
    workspace = str(code_server_workspace(settings))
    services.start(
        "dagster-webserver", [str(BIN / "dagster-webserver"), "-h", host, "-p", str(dagster_port), "-w", workspace]
    )
    services.start("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])
    services.start("storemon-api", [sys.executable, "-m", "storemon_pipeline.serving.api"])
    wait_for_http(f"http://{host}:{dagster_port}/server_info", services)
    wait_for_code_location(host, dagster_port, services)
    wait_for_http(f"http://{host}:{api_port}/health", services)


def busy_ports(settings: Settings) -> list[str]:
    """One line per port that another process already holds, naming the variable to change."""
    problems = []
    for variable, port in (("STOREMON_DAGSTER_PORT", settings.dagster_port), ("STOREMON_API_PORT", settings.api_port)):
        with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
            try:
                probe.bind((settings.host, port))
            except OSError as error:
                problems.append(
                    f"port {port} on {settings.host} is in use ({error.strerror}); set {variable} to a free port"
                )
    return problems


def first_report(settings: Settings) -> str | None:
    """The id of the newest complete report, if there is one."""
    from storemon_pipeline.serving.report_runs import DagsterUnavailable, ReportRuns

    try:
        runs = ReportRuns(settings.host, settings.dagster_port, settings.reports_dir, timeout=10).recent(limit=5)
    except DagsterUnavailable:
        return None
    return next((run["report_id"] for run in runs if run["status"] == "Complete"), None)


def main() -> None:
    settings = settings_from_env()
    problems = busy_ports(settings)
    if problems:
        for problem in problems:
            print(f"storemon: {problem}", file=sys.stderr, flush=True)
        sys.exit(1)
    if settings.demo_feed:
        settings = settings.replace(source_dir=settings.demo_sources)
    host, dagster_port, api_port = settings.host, settings.dagster_port, settings.api_port
    env = prepare_instance(settings) | {
        "STOREMON_HOST": host,
        "STOREMON_DAGSTER_PORT": str(dagster_port),
        "STOREMON_API_PORT": str(api_port),
    }
    os.environ.update(env)
    local = [folder for folder in (settings.reports_dir, settings.asset_dir) if is_local(folder)]
    for path in [stale for folder in local for stale in remove_stale_temp_files(folder)]:
        print(f"storemon: removed {path}, left by a killed writer", flush=True)
    stop_requested = False

    def request_stop(signum, frame):
        nonlocal stop_requested
        if not stop_requested:  # a second signal must not interrupt the clean stop
            stop_requested = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    # Also when started in the background by a shell, which makes it ignore SIGINT.
    signal.signal(signal.SIGINT, request_stop)
    from storemon_pipeline.core.settings import redact

    with Services(env=env, log_dir=settings.home / "logs") as services:
        try:
            print(
                f"storemon: home {settings.home}, sources {settings.source_dir}, "
                f"warehouse {redact(settings.warehouse_url)}",
                flush=True,
            )
            if settings.demo_feed:
                from storemon_pipeline.core import demo_feed

                end = demo_feed.start(settings.source_dir)
                print(
                    f"storemon: demo feed: the sample up to {end} UTC in {settings.source_dir}, "
                    f"the next hour appended every {settings.demo_feed_seconds:g} s",
                    flush=True,
                )
                services.start(
                    "demo-feed",
                    [
                        sys.executable,
                        "-m",
                        "storemon_pipeline.core.demo_feed",
                        "--out",
                        str(settings.source_dir),
                        "--keep",
                        "--interval-seconds",
                        str(settings.demo_feed_seconds),
                    ],
                )
            start_storemon(services, settings)
            from dagster_graphql import DagsterGraphQLClient

            client = DagsterGraphQLClient(host, port_number=dagster_port)
            run_id = client.submit_job_execution("ingest_job", tags={"storemon/trigger": "make-run"})
            print(f"storemon: ingesting the sources (run {run_id}) ...", flush=True)
            print(f"storemon: ingest_job {wait_for_run(client, run_id)}", flush=True)
            print(f"storemon: Dagster UI      http://{host}:{dagster_port}", flush=True)
            print(
                f"storemon: REST API        http://{host}:{api_port}  (POST /trigger_report, GET /get_report?report_id=, /openapi.json)",
                flush=True,
            )
            print(
                f"storemon: GraphQL         http://{host}:{dagster_port}/graphql  (storemon trigger-report / get-report)",
                flush=True,
            )
            print(f"storemon: reports         {settings.reports_dir}", flush=True)
            print(f"storemon: logs            {services.log_dir}", flush=True)
            print("storemon: ready; press Ctrl-C to stop", flush=True)
            shown, next_look = None, 0.0
            while not stop_requested:
                services.supervise()
                if shown is None and time.monotonic() >= next_look:
                    # The sensor computes the first report after the first ingest.
                    shown, next_look = first_report(settings), time.monotonic() + 2
                    if shown:
                        print(
                            f"storemon: first report {shown}: http://{host}:{api_port}/get_report?report_id={shown}",
                            flush=True,
                        )
                time.sleep(1)
        except KeyboardInterrupt:
            print("\nstoremon: stopping ...", flush=True)
    print("storemon: stopped", flush=True)


if __name__ == "__main__":
    main()
