"""Can storemon's storage be used? Cheap checks for /health and for clear errors.

Imports neither duckdb nor pandas: the REST API uses it.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from storemon_pipeline.core.settings import Settings, is_local, redact

DUCKDB_MAGIC = b"DUCK"  # at byte 8 of every DuckDB database file


class StorageFull(Exception):
    """A folder has no space left; the message names it."""


def is_no_space(error: BaseException) -> bool:
    return getattr(error, "errno", None) == errno.ENOSPC or "no space left" in str(error).lower()


def no_space_error(folder: Path, error: BaseException) -> StorageFull:
    return StorageFull(f"no space left in {folder}; free space there ({str(error).strip().splitlines()[0][:300]})")


def duckdb_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable DuckDB file (None: fine, or not created yet)."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        return f"{path}: is a directory, not a DuckDB database"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as error:
        return f"{path}: cannot be read: {error.strerror}"
    if len(head) < 12 or head[8:12] != DUCKDB_MAGIC:
        return f"{path}: is not a DuckDB database (damaged or a foreign file); move it away and ingest again"
    return None


MIN_FREE_BYTES = 1024 * 1024
MIN_FREE_SHARE = 0.05


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (None: they can). Nearly full counts: a load
    or a report needs room, and a probe of a few bytes would still fit."""
    try:
        stats = os.statvfs(folder) if Path(folder).exists() else None
    except OSError:
        stats = None
    if stats is not None:
        free, size = stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
        if free < MIN_FREE_BYTES or free < MIN_FREE_SHARE * size:
            return f"no space left in {folder} ({free / 2**20:.1f} MB free of {size / 2**20:.0f} MB)"
    probe = Path(folder) / f".health-{uuid.uuid4().hex}.tmp"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        if is_no_space(error):
            return f"no space left in {folder}"
        return f"{folder}: cannot be written: {error.strerror or error}"
    finally:
        probe.unlink(missing_ok=True)
    return None


def postgres_problem(url: str) -> str | None:
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.Error as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"cannot reach the Postgres warehouse at {redact(url)}: {first_line}"
    return None


def storage_problems(settings: Settings) -> list[str]:
    """Everything that would stop an ingest or a report from writing what it must (a reports
    store at a URL is the store's to keep writable)."""
    problems = [folder_problem(settings.reports_dir)] if is_local(settings.reports_dir) else []
    if settings.embedded:
        problems += [folder_problem(settings.home), duckdb_file_problem(settings.database)]
    else:
        problems.append(postgres_problem(settings.warehouse))
    return [problem for problem in problems if problem]
