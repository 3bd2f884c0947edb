"""DuckDB helpers shared by ingestion, the warehouses and the report."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from storemon_pipeline.core.health import is_no_space, no_space_error
from storemon_pipeline.core.settings import is_local


def configure(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Settings for every connection. DuckDB would otherwise draw a progress bar on stdout
    for long queries (it ends up in the Dagster run logs). STOREMON_DUCKDB_MEMORY_LIMIT
    (e.g. "2GB"; default DuckDB's 80% of RAM) makes it spill to disk sooner."""
    from storemon_pipeline.core.settings import settings_from_env

    conn.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'")
    memory_limit = settings_from_env().duckdb_memory_limit
    if memory_limit:
        conn.execute("SET memory_limit = ?", [memory_limit])
    return conn


def fetch_row(conn: duckdb.DuckDBPyConnection, sql: str, params=None) -> tuple | None:
    """The first row of a query. (DuckDB 2 refuses new work while a result is half-read.)"""
    rows = conn.execute(sql, params).fetchall()
    return rows[0] if rows else None


def fetch_value(conn: duckdb.DuckDBPyConnection, sql: str, params=None):
    row = fetch_row(conn, sql, params)
    return None if row is None else row[0]


def hidden_temp_name(path: Path) -> Path:
    """A hidden, unused name beside ``path``: what atomic writers write before the rename."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A hidden temp name beside ``path`` to write; renamed to ``path`` when the block ends
    without error, removed otherwise. A full disk is named as such."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except (duckdb.Error, OSError) as error:
        if is_no_space(error):
            raise no_space_error(path.parent, error) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomically(path: Path, chunks) -> None:
    """Write the chunks (bytes) as ``path`` (atomic_file); at a URL, in one fsspec transaction
    (an object store publishes the object when it completes)."""
    if not is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.fs.transaction, path.fs.open(path.path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        return
    with atomic_file(path) as tmp, open(tmp, "wb") as out:
        for chunk in chunks:
            out.write(chunk)


def write_query(conn: duckdb.DuckDBPyConnection, query: str, path: Path, file_format: str = "csv") -> None:
    """Write a query's result to ``path`` atomically (atomic_file): CSV with a header (gzip if
    the name ends in .gz), or Parquet."""
    path = Path(path)
    if file_format == "csv":
        options = f"FORMAT csv, HEADER, COMPRESSION {'gzip' if path.suffix == '.gz' else 'none'}"
    else:
        options = "FORMAT parquet"
    # A name that does not exist yet: DuckDB then writes it in place (for an existing file it
    # would write a visible tmp_<name> of its own first).
    with atomic_file(path) as tmp:
        conn.execute(f"COPY ({query}) TO '{tmp}' ({options}, USE_TMP_FILE false)")
