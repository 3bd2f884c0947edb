"""Every STOREMON_* setting, read in this one place.

| variable | default | meaning |
|---|---|---|
| STOREMON_HOME | .storemon/ | local state: the embedded DuckDB file, the Dagster instance, reports, logs |
| STOREMON_SOURCE_DIR | data/sample/ | the folder with the three source CSVs |
| STOREMON_POLLS, STOREMON_HOURS, STOREMON_TIMEZONES | (the known names in the source folder) | explicit source files, any names; STOREMON_POLLS may list several, separated by `:` |
| STOREMON_WAREHOUSE | duckdb | where the sources live: ``duckdb`` (the embedded file in the home) or a ``postgresql://`` URL |
| STOREMON_REPORTS_DIR | $STOREMON_HOME/reports | report CSVs, their history rows, latest/, and the report steps' hand-offs (.steps/): a folder or an fsspec URL (s3://bucket/reports) every machine reaches |
| STOREMON_HOST | 127.0.0.1 | the address every service binds to and the CLI talks to |
| STOREMON_DAGSTER_PORT | 3000 | the Dagster UI and GraphQL API |
| STOREMON_API_PORT | 8000 | the REST API |
| STOREMON_DEMO_FEED | 0 | 1: `make run` generates the sample up to this hour and appends the next hour's polls every interval |
| STOREMON_DEMO_FEED_SECONDS | 3600 | the demo feed's interval |
| STOREMON_ALLOWED_HOSTS | 127.0.0.1,localhost,::1 | Host names the REST API answers to (behind a proxy: its public name); comma-separated |
| STOREMON_MAX_POLL_AGE_HOURS | 2 | the freshness check warns when the newest poll is older |
| STOREMON_DUCKDB_MEMORY_LIMIT | DuckDB's (80% of RAM) | DuckDB's memory_limit, e.g. 2GB |
| STOREMON_LOCK_TIMEOUT_SECONDS | 60 | how long a writer waits for readers of the DuckDB file (and a reader for a writer) |
| STOREMON_RETENTION_DAYS | 35 | each load drops polls older than this many days before the newest poll (0: keep all) |
| STOREMON_EXECUTOR | local | where the code location's runs execute their steps: `local` (each run chooses in_process, multiprocess or dask in its run config) or `k8s` (a pod per step; needs the `k8s` extra) |

This module never imports dagster: the core, the Dagster layer and serving all read it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_HOME = REPO_ROOT / ".storemon"
DEFAULT_SOURCE_DIR = REPO_ROOT / "data" / "sample"
DEFAULT_TIMEZONE = "America/Chicago"
EMBEDDED = "duckdb"
# local: a run chooses in_process (default), multiprocess or dask (run config `execution`);
# k8s: every step is a Kubernetes pod (dagster-k8s's k8s_job_executor).
EXECUTORS = ("local", "k8s")
# What a run may choose under `execution.config` with `local` (executors.storemon_executor).
RUN_EXECUTORS = ("in_process", "multiprocess", "dask")
# Here, not in jobs.py, so the CLI and the REST API can name the job without loading assets.
REPORT_JOB_NAME = "report_job"
INGEST_JOB_NAME = "ingest_job"
CODE_LOCATION_NAME = "storemon_pipeline"
# Explicit source files: source name -> the variable that names them (os.pathsep-separated).
SOURCE_FILE_VARIABLES = {
    "store_status": "STOREMON_POLLS",
    "business_hours": "STOREMON_HOURS",
    "timezones": "STOREMON_TIMEZONES",
}


@dataclass(frozen=True)
class Settings:
    home: Path
    source_dir: Path
    warehouse: str = EMBEDDED
    reports_dir_override: Path | None = None
    host: str = "127.0.0.1"
    dagster_port: int = 3000
    api_port: int = 8000
    max_poll_age_hours: float = 2.0
    duckdb_memory_limit: str | None = None
    lock_timeout_seconds: float = 60.0
    retention_days: int = 35
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    demo_feed: bool = False
    # Explicit source files (source name -> paths); a source not named is found in source_dir.
    source_files: tuple[tuple[str, tuple[Path, ...]], ...] = ()
    demo_feed_seconds: float = 3600.0
    executor: str = "local"

    @property
    def database(self) -> Path:
        """The embedded DuckDB file (used when ``warehouse`` is ``duckdb``)."""
        return self.home / "storemon.duckdb"

    @property
    def files(self) -> dict[str, tuple[Path, ...]]:
        """Explicit source files by source name (``ingest(files=...)``)."""
        return dict(self.source_files)

    @property
    def demo_sources(self) -> Path:
        """Where the demo feed writes (STOREMON_DEMO_FEED=1 replaces the source folder)."""
        return self.home / "demo-sources"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def code_server_socket(self) -> Path:
        return self.home / "code-server.sock"

    @property
    def reports_dir(self) -> Path:
        return self.reports_dir_override or self.home / "reports"

    @property
    def step_store(self) -> Path:
        """Where report_job's steps hand their outputs to the next (Dagster's I/O manager):
        beside the reports, so a step on another machine reads what a shard wrote."""
        return self.reports_dir / ".steps"

    @property
    def asset_dir(self) -> Path:
        """The latest materialization of each intermediate report asset, as Parquet files
        (beside the reports, so every machine that serves reports sees them)."""
        return self.reports_dir / "latest"

    @property
    def embedded(self) -> bool:
        return self.warehouse == EMBEDDED

    @property
    def warehouse_url(self) -> str:
        """The warehouse as a location: the DuckDB file's path, or the Postgres URL."""
        return str(self.database) if self.embedded else self.warehouse

    def replace(self, **changes) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)


def _number(env: Mapping[str, str], name: str, default, kind=int):
    text = env.get(name)
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number (default {default})") from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env.get("STOREMON_HOME") or DEFAULT_HOME).resolve()
    reports = env.get("STOREMON_REPORTS_DIR")
    return Settings(
        home=home,
        source_dir=Path(env.get("STOREMON_SOURCE_DIR") or DEFAULT_SOURCE_DIR).resolve(),
        warehouse=normalize_warehouse(env.get("STOREMON_WAREHOUSE")),
        reports_dir_override=location(reports) if reports else None,
        host=env.get("STOREMON_HOST") or "127.0.0.1",
        dagster_port=_number(env, "STOREMON_DAGSTER_PORT", 3000),
        api_port=_number(env, "STOREMON_API_PORT", 8000),
        allowed_hosts=tuple(
            h.strip() for h in (env.get("STOREMON_ALLOWED_HOSTS") or "127.0.0.1,localhost,::1").split(",") if h.strip()
        ),
        max_poll_age_hours=_number(env, "STOREMON_MAX_POLL_AGE_HOURS", 2.0, float),
        duckdb_memory_limit=env.get("STOREMON_DUCKDB_MEMORY_LIMIT") or None,
        lock_timeout_seconds=_number(env, "STOREMON_LOCK_TIMEOUT_SECONDS", 60.0, float),
        retention_days=_number(env, "STOREMON_RETENTION_DAYS", 35),
        source_files=tuple(
            (source, tuple(Path(part).resolve() for part in env[variable].split(os.pathsep) if part))
            for source, variable in SOURCE_FILE_VARIABLES.items()
            if env.get(variable)
        ),
        demo_feed=(env.get("STOREMON_DEMO_FEED") or "0").strip().lower() in ("1", "true", "yes"),
        demo_feed_seconds=_number(env, "STOREMON_DEMO_FEED_SECONDS", 3600.0, float),
        executor=_choice(env, "STOREMON_EXECUTOR", EXECUTORS),
    )


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).strip()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)} (default {choices[0]})")
    return value


class SettingsError(ValueError):
    pass


def normalize_warehouse(value: str | None) -> str:
    """``duckdb`` (also for unset or empty) or a ``postgresql://`` URL."""
    value = (value or "").strip()
    if value in ("", EMBEDDED):
        return EMBEDDED
    if value.startswith(("postgresql://", "postgres://")):
        return value
    raise SettingsError(f"STOREMON_WAREHOUSE must be 'duckdb' or a postgresql:// URL, not {redact(value)!r}")


def redact(url: str) -> str:
    """A URL with its password elided, for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def location(text: str) -> Path:
    """A folder setting: a local path, or an fsspec URL (``s3://bucket/prefix``, ``file:///...``)
    as a UPath, which reads and writes through fsspec."""
    if "://" in text:
        from upath import UPath

        return UPath(text)
    return Path(text).resolve()


def is_local(path: Path) -> bool:
    """A plain local path (not a URL's UPath): os calls (rename, statvfs, FileResponse) apply."""
    return isinstance(path, Path)


def report_path(reports_dir: Path, report_id: str) -> Path:
    """Where the run ``report_id`` writes its report (callers pass a validated run id)."""
    return reports_dir / f"{report_id}.csv"


# The CSVs written beside each report, reports/<id>.<name>.csv (core.report.REPORT_FILES).
REPORT_FILE_NAMES = ("incidents", "daily", "extended")


def report_file_path(reports_dir: Path, report_id: str, name: str) -> Path:
    """One of the CSVs written with the report (REPORT_FILE_NAMES)."""
    return reports_dir / f"{report_id}.{name}.csv"


def report_record_path(reports_dir: Path, report_id: str) -> Path:
    """The report's row of the reports history, written after its CSV."""
    return reports_dir / f"{report_id}.json"
