"""Where storemon keeps its state and reads its sources.

Everything lives under one home folder (``STOREMON_HOME``): the DuckDB file, the Dagster
instance and the report files. Sources come from ``STOREMON_SOURCE_DIR``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = REPO_ROOT / ".storemon"
DEFAULT_SOURCE_DIR = REPO_ROOT / "data" / "sample"
DEFAULT_TIMEZONE = "America/Chicago"
# Here, not in jobs.py, so the CLI and the REST API can name the job without loading assets.
REPORT_JOB_NAME = "report_job"


@dataclass(frozen=True)
class StoremonPaths:
    home: Path
    source_dir: Path

    @property
    def database(self) -> Path:
        return self.home / "storemon.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def paths_from_env() -> StoremonPaths:
    return StoremonPaths(
        home=Path(os.environ.get("STOREMON_HOME") or DEFAULT_HOME).resolve(),
        source_dir=Path(os.environ.get("STOREMON_SOURCE_DIR") or DEFAULT_SOURCE_DIR).resolve(),
    )


def report_path(reports_dir: Path, report_id: str) -> Path:
    """Where the run ``report_id`` writes its report (callers pass a validated run id)."""
    return reports_dir / f"{report_id}.csv"
