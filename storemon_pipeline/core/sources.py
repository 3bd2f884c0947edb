"""Finding and reading the three source CSV files.

Columns are found by header name, in any order; both published versions of the dataset
(2023 and 2025) and their original file names are accepted, plain or gzip-compressed.

No value in these files can hold a line break, so a row is one line. DuckDB's reader
(multithreaded, and the only pass over the bytes) reads each file as whole lines, in order,
so every row keeps its physical line number; the fields are then split in SQL. A broken
line (an unterminated quote, too few or too many fields, bytes that are not UTF-8) costs
only itself. An uncompressed file that only grew is read from where the last run stopped,
and a last line with no newline yet (a file still being written) is left for the next run.
"""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import os
import stat
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from storemon_pipeline.core.db import fetch_value

FINGERPRINT_BYTES = 64 * 1024
# DuckDB's reader splits lines on this byte only: no text line of these files holds it.
_NO_DELIMITER = "\x1f"
# A longer line is rejected as such. (The reader's buffers grow with it: 8 MiB read the polls
# a third slower than 1 MiB.)
MAX_LINE_BYTES = 1024 * 1024
SHOWN_CHARACTERS = 200  # a line or value is echoed at most this long (messages, tables, metadata)


class SourceError(Exception):
    """A whole source file cannot be used (missing, empty, wrong header)."""


@dataclass(frozen=True)
class SourceSpec:
    name: str
    file_names: tuple[str, ...]  # glob patterns, matched case-insensitively, with optional .gz
    columns: dict[str, tuple[str, ...]]  # canonical column -> accepted header names

    @property
    def expected_columns(self) -> str:
        return ", ".join(" or ".join(names) for names in self.columns.values())


STORE_STATUS = SourceSpec(
    name="store_status",
    file_names=("store_status.csv", "store status.csv"),
    columns={
        "store_id": ("store_id",),
        "timestamp_utc": ("timestamp_utc",),
        "status": ("status",),
    },
)
BUSINESS_HOURS = SourceSpec(
    name="business_hours",
    file_names=("business_hours.csv", "menu_hours.csv", "menu hours.csv"),
    columns={
        "store_id": ("store_id",),
        "day_of_week": ("dayOfWeek", "day"),
        "start_time_local": ("start_time_local",),
        "end_time_local": ("end_time_local",),
    },
)
TIMEZONES = SourceSpec(
    name="timezones",
    file_names=("timezones.csv", "bq-results-*.csv"),
    columns={"store_id": ("store_id",), "timezone_str": ("timezone_str",)},
)


def find_source_file(spec: SourceSpec, source_dir: Path) -> Path:
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise SourceError(
            f"source folder {source_dir} does not exist"
            if not source_dir.exists()
            else f"{source_dir}: is not a folder"
        )
    patterns = [p.lower() for name in spec.file_names for p in (name, name + ".gz")]
    matches = sorted(path for path in source_dir.iterdir() if any(Path(path.name.lower()).match(p) for p in patterns))
    if not matches:
        raise SourceError(
            f"no {spec.name} file in {source_dir}: expected one of " + ", ".join(f"{n}[.gz]" for n in spec.file_names)
        )
    if len(matches) > 1:
        raise SourceError(
            f"several {spec.name} files in {source_dir}: " + ", ".join(m.name for m in matches) + "; keep exactly one"
        )
    return usable_file(matches[0])


def usable_file(path: Path) -> Path:
    """``path`` if it is a readable file; otherwise a SourceError saying what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SourceError(f"{path}: is a symbolic link in a loop; it cannot be read") from None
        if path.is_symlink():
            raise SourceError(f"{path}: is a symbolic link that leads nowhere") from None
        raise SourceError(f"{path}: cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise SourceError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise SourceError(f"{path}: is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise SourceError(f"{path}: cannot be read ({error.strerror})") from None
    return path


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _open_binary(path: Path):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


@dataclass(frozen=True)
class Header:
    names: list[str]  # header fields as written in the file
    columns: dict[str, int]  # canonical column -> position in the file
    data_offset: int  # byte offset of the first data line (uncompressed stream)


def read_header(path: Path, spec: SourceSpec) -> Header:
    try:
        with _open_binary(path) as f:
            first = f.readline(1 << 20)
    except (EOFError, OSError, zlib.error) as error:
        raise SourceError(f"{path}: {_read_problem(path, error)}") from None
    if not first.strip():
        raise SourceError(f"{path}: the file is empty; expected a header with columns {spec.expected_columns}")
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    names = [n.strip() for n in next(csv.reader([text]))]
    lowered = {n.lower(): i for i, n in enumerate(names)}
    columns: dict[str, int] = {}
    missing = []
    for canonical, accepted in spec.columns.items():
        position = next((lowered[a.lower()] for a in accepted if a.lower() in lowered), None)
        if position is None:
            missing.append(" or ".join(accepted))
        else:
            columns[canonical] = position
    if missing:
        raise SourceError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}; "
            f"expected columns {spec.expected_columns}; found {', '.join(names) or 'nothing'}"
        )
    return Header(names=names, columns=columns, data_offset=len(first))


def fingerprint(path: Path, upto: int) -> str:
    """A cheap identity for the first ``upto`` bytes: the first 64 KiB plus the 64 KiB before ``upto``.

    If it still matches, the file is taken to have grown by appending only.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(min(upto, FINGERPRINT_BYTES)))
        tail_start = max(0, upto - FINGERPRINT_BYTES)
        f.seek(tail_start)
        digest.update(f.read(upto - tail_start))
    digest.update(str(upto).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Lines: the file read by DuckDB as one VARCHAR per line, numbered as in the file.


@dataclass(frozen=True)
class LinesRead:
    table: str  # line_number BIGINT, line VARCHAR (NULL: the line could not be read; see reason)
    end_offset: int  # byte offset just after the last complete line read (plain files)
    next_line: int  # the line number after it
    damage: str | None = None  # a damaged gzip file: where reading stopped (the lines before it were read)


_READ_ERRORS = {
    "INVALID ENCODING": "the line is not valid UTF-8",
    "TOO MANY COLUMNS": "the line holds a control character (0x1F)",
    "LINE SIZE OVER MAXIMUM": f"the line is longer than {MAX_LINE_BYTES // 2**20} MiB",
}


def read_lines(
    conn: duckdb.DuckDBPyConnection, path: Path, header: Header, start_offset: int, first_line: int, table: str
) -> LinesRead:
    """Every line of ``path`` from ``start_offset`` (a line start; its number is ``first_line``)
    into ``table(line_number, line, unreadable)``: one row per line, blank lines included.

    gzip files are read whole. For a plain file the read stops after the last newline, so a
    line still being written is read by the next run.
    """
    damage = None
    with tempfile.TemporaryDirectory(prefix="storemon-lines-") as scratch:
        try:
            if is_gzip(path):
                end_offset, target, skip = start_offset, path, 1
            else:
                end_offset = _last_line_end(path, start_offset)
                if start_offset == header.data_offset and end_offset == path.stat().st_size:
                    target, skip = path, 1  # the common case: the whole file, as it is
                else:
                    target, skip = Path(scratch) / "range.csv", 0
                    _copy_range(path, start_offset, end_offset, target)
            try:
                _duckdb_lines(conn, target, skip, table)
            except duckdb.Error as error:
                if is_gzip(path) and "invalid state" not in str(error):
                    # A damaged or truncated gzip file: keep every complete line before the damage.
                    salvaged = Path(scratch) / "salvaged.csv"
                    lines_kept, problem = _salvage_gzip(path, salvaged)
                    damage = (
                        f"the gzip data is damaged after line {lines_kept:,} ({problem}); the lines before it were read"
                    )
                    _duckdb_lines(conn, salvaged, 1, table)
                    return _finish(conn, table, first_line, 0, end_offset, damage)
                if "invalid state" not in str(error):
                    raise
                # DuckDB refuses a file that mixes line endings or holds a bare CR: read a
                # copy whose only line break is LF (a stray CR becomes a control character,
                # which validation rejects).
                normalized = Path(scratch) / "normalized.csv"
                _normalized_copy(path, start_offset, end_offset, normalized)
                target, skip = normalized, 0
                _duckdb_lines(conn, target, skip, table)
        except (EOFError, OSError, zlib.error, duckdb.Error) as error:
            raise SourceError(f"{path}: {_read_problem(path, error)}") from None
    # Reported line numbers count from the first line of what DuckDB read.
    return _finish(conn, table, first_line, 0 if skip else first_line - 1, end_offset, damage)


def _finish(conn, table: str, first_line: int, base: int, end_offset: int, damage: str | None) -> LinesRead:
    _number_lines(conn, table, first_line, base)
    count = fetch_value(conn, f"SELECT count(*) FROM {table}")
    return LinesRead(table=table, end_offset=end_offset, next_line=first_line + count, damage=damage)


def _salvage_gzip(path: Path, target: Path) -> tuple[int, str]:
    """Decompress ``path`` into ``target`` up to the damage, whole lines only; returns the
    number of the last complete line and what was wrong."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    problem, tail, lines = "it ends early", b"", 0
    with open(path, "rb") as source, open(target, "wb") as out:
        try:
            while chunk := source.read(1 << 20):
                data = tail + inflater.decompress(chunk)
                while inflater.unused_data:  # the next gzip member
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
                    data += inflater.decompress(rest)
                cut = data.rfind(b"\n") + 1
                out.write(data[:cut])
                lines += data.count(b"\n", 0, cut)
                tail = data[cut:]
            if inflater.eof and tail:
                out.write(tail)  # a complete stream's last line needs no newline
                lines += 1
            elif inflater.eof:
                problem = "no damage found"
        except zlib.error as error:
            problem = str(error)
    return lines, problem


def _read_problem(path: Path, error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if is_gzip(path) and ("gzip" in text.lower() or isinstance(error, (EOFError, zlib.error))):
        return f"not a complete gzip file ({text})"
    return text


def _last_line_end(path: Path, start: int) -> int:
    """The offset just after the last LF at or after ``start`` (``start`` if there is none)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        position = size
        while position > start:
            step = min(1 << 16, position - start)
            f.seek(position - step)
            chunk = f.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                return position - step + cut + 1
            position -= step
    return start


def _copy_range(path: Path, start: int, end: int, target: Path) -> None:
    with open(path, "rb") as source, open(target, "wb") as out:
        source.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = source.read(min(1 << 24, remaining))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)


def _normalized_copy(path: Path, start: int, end: int, target: Path) -> None:
    if is_gzip(path):
        with gzip.open(path, "rb") as f:
            f.readline()  # the header
            data = f.read()
    else:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
    target.write_bytes(data.replace(b"\r\n", b"\n").replace(b"\r", b"\x1a"))


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _duckdb_lines(conn: duckdb.DuckDBPyConnection, target: Path, skip: int, table: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {table}_errors; DROP TABLE IF EXISTS {table}_scans")
    conn.execute(
        f"""
        CREATE OR REPLACE TABLE {table}_read AS
        SELECT line FROM read_csv({_sql_path(target)}, header = false, skip = {skip}, auto_detect = false,
            delim = '{_NO_DELIMITER}', quote = '', escape = '', columns = {{'line': 'VARCHAR'}},
            strict_mode = true, store_rejects = true, rejects_table = '{table}_errors',
            rejects_scan = '{table}_scans', max_line_size = {MAX_LINE_BYTES})
        """
    )


def _number_lines(conn: duckdb.DuckDBPyConnection, table: str, first_line: int, base: int) -> None:
    """Give each line its number. Lines come out of the reader in order, less the ones it
    could not read (listed with their numbers in ``<table>_errors``), which go back in their
    places: row k (1-based) is the k-th line not among them."""
    reasons = " ".join(f"WHEN '{kind}' THEN '{reason}'" for kind, reason in _READ_ERRORS.items())
    conn.execute(
        f"""
        CREATE OR REPLACE TABLE {table}_unreadable AS
        SELECT line + {base} AS line_number,
               CASE min(error_type) {reasons} ELSE 'the line cannot be read: ' || min(error_message) END AS reason,
               left(min(csv_line), {SHOWN_CHARACTERS}) AS raw_values
        FROM {table}_errors GROUP BY line + {base};
        DROP TABLE {table}_errors; DROP TABLE {table}_scans;
        """
    )
    if not fetch_value(conn, f"SELECT count(*) FROM {table}_unreadable"):
        # (the usual case: every line was read, so row k is line first_line + k - 1)
        conn.execute(
            f"CREATE OR REPLACE VIEW {table} AS SELECT rowid + {first_line} AS line_number, line, "
            f"NULL::VARCHAR AS reason, NULL::VARCHAR AS raw_values FROM {table}_read"
        )
        return
    conn.execute(
        f"""
        CREATE OR REPLACE VIEW {table} AS
        WITH skips AS (
            -- the j-th unreadable line comes after (its number - first_line + 1) - j readable ones
            SELECT line_number - {first_line} + 1 - row_number() OVER (ORDER BY line_number) AS rows_before,
                   row_number() OVER (ORDER BY line_number) AS skipped
            FROM {table}_unreadable
        ),
        steps AS (SELECT rows_before, max(skipped) AS skipped FROM skips GROUP BY rows_before)
        SELECT r.k + {first_line} + coalesce(s.skipped, 0) AS line_number, r.line, NULL::VARCHAR AS reason, NULL::VARCHAR AS raw_values
        FROM (SELECT rowid AS k, line FROM {table}_read) r ASOF LEFT JOIN steps s ON r.k + 1 > s.rows_before
        UNION ALL
        SELECT line_number, NULL, reason, raw_values FROM {table}_unreadable
        """
    )


def drop_lines(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    conn.execute(f"DROP VIEW {table}; DROP TABLE {table}_read; DROP TABLE {table}_unreadable")
