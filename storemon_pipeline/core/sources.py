"""Finding and reading the three source CSV files.

Columns are found by header name, in any order; both published versions of the dataset
(2023 and 2025) and their original file names are accepted, plain or gzip-compressed.
Files are read in blocks of whole lines so that every row keeps its line number, memory
stays bounded, and an uncompressed file that only grew can be read from where the last
run stopped.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

BLOCK_BYTES = 16 * 1024 * 1024
FINGERPRINT_BYTES = 64 * 1024


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
        raise SourceError(f"source folder {source_dir} does not exist")
    patterns = [p.lower() for name in spec.file_names for p in (name, name + ".gz")]
    matches = sorted(
        path
        for path in source_dir.iterdir()
        if path.is_file() and any(Path(path.name.lower()).match(p) for p in patterns)
    )
    if not matches:
        raise SourceError(
            f"no {spec.name} file in {source_dir}: expected one of "
            + ", ".join(f"{n}[.gz]" for n in spec.file_names)
        )
    if len(matches) > 1:
        raise SourceError(
            f"several {spec.name} files in {source_dir}: "
            + ", ".join(m.name for m in matches)
            + "; keep exactly one"
        )
    return matches[0]


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
    with _open_binary(path) as f:
        first = f.readline()
    if not first.strip():
        raise SourceError(f"{path}: the file is empty; expected a header with columns {spec.expected_columns}")
    text = first.decode("utf-8-sig").rstrip("\r\n")
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


@dataclass
class Block:
    """Parsed rows of one block of whole lines, plus lines the CSV parser could not split."""

    rows: pd.DataFrame  # canonical columns as stripped strings, plus line_number
    malformed: pd.DataFrame  # line_number, reason
    end_offset: int  # byte offset just after the last complete line of this block
    next_line: int  # line number of the line after this block


_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (.*)")


def iter_blocks(
    path: Path,
    header: Header,
    start_offset: int,
    first_line: int,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Block]:
    """Yield parsed blocks of whole lines from ``start_offset`` (a line start) to the end of the file.

    A last line with no newline is parsed too, but ``end_offset`` stops before it, so an
    incremental read sees it again (ingestion is idempotent on the poll key).
    """
    with _open_binary(path) as f:
        f.seek(start_offset)
        offset, line, pending = start_offset, first_line, b""
        while True:
            chunk = f.read(block_bytes)
            data = pending + chunk
            if not chunk:
                if data.strip():
                    rows, malformed = _parse(data, header, line, n_lines=data.count(b"\n") + 1)
                    yield Block(rows=rows, malformed=malformed, end_offset=offset, next_line=line)
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                pending = data  # no complete line yet: read more
                continue
            complete, pending = data[:cut], data[cut:]
            n_lines = complete.count(b"\n")
            rows, malformed = _parse(complete, header, line, n_lines=n_lines)
            offset, line = offset + cut, line + n_lines
            yield Block(rows=rows, malformed=malformed, end_offset=offset, next_line=line)


def _parse(data: bytes, header: Header, first_line: int, n_lines: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not data.strip():  # only blank lines: pandas would see no columns at all
        empty = pd.DataFrame({c: pd.Series(dtype="str") for c in header.columns})
        empty["line_number"] = pd.Series(dtype="int64")
        return empty, _no_malformed_lines()
    width = len(header.names)
    frame = _parse_well_formed(data, width, n_lines)
    if frame is not None:
        return _rows(frame, header, np.arange(first_line, first_line + n_lines)), _no_malformed_lines()
    # A synthetic header and a dummy first row fix the field count, so an over-long first
    # line is reported as malformed instead of being taken for an index column.
    preamble = (",".join(f"c{i}" for i in range(width)) + "\n" + "," * (width - 1) + "\n").encode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = pd.read_csv(
            io.BytesIO(preamble + data),
            header=0,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            on_bad_lines="warn",
            encoding="utf-8",
            encoding_errors="replace",
            lineterminator="\n",  # lines are what n_lines counts; a CR before it is stripped with the field
        )
    skipped_lines, reasons = [], []
    for warning in caught:
        for match in _SKIPPED_LINE.finditer(str(warning.message)):
            # pandas counts the two preamble lines too
            skipped_lines.append(first_line + int(match.group(1)) - 3)
            reasons.append(f"malformed CSV line: {match.group(2).strip()}")
    frame = frame.iloc[1:]  # the dummy row
    # Rows map onto consecutive lines except the ones the parser skipped.
    line_numbers = np.arange(first_line, first_line + n_lines)
    if skipped_lines:
        kept = np.ones(n_lines, dtype=bool)
        kept[np.asarray(skipped_lines) - first_line] = False
        line_numbers = line_numbers[kept]
    malformed = pd.DataFrame({"line_number": np.asarray(skipped_lines, dtype="int64"), "reason": reasons})
    return _rows(frame, header, line_numbers), malformed


def _parse_well_formed(data: bytes, width: int, n_lines: int) -> pd.DataFrame | None:
    """The fast path (pyarrow's multi-threaded reader, ~6x pandas' here): columns c0..c<width-1>.

    Only when every line is exactly one row of ``width`` fields, so row i is line i; anything
    else (blank, short, long or multi-line rows, bad UTF-8) returns None for the exact path.
    """
    names = [f"c{i}" for i in range(width)]
    invalid_rows = []
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=names, block_size=BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: invalid_rows.append(row) or "skip"),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid_rows or table.num_rows != n_lines:
        return None
    return table.to_pandas()


def _no_malformed_lines() -> pd.DataFrame:
    return pd.DataFrame({"line_number": pd.Series(dtype="int64"), "reason": pd.Series(dtype="str")})


def _rows(frame: pd.DataFrame, header: Header, line_numbers: np.ndarray) -> pd.DataFrame:
    rows = pd.DataFrame(
        {canonical: frame[f"c{position}"].str.strip() for canonical, position in header.columns.items()}
    )
    rows["line_number"] = line_numbers[: len(rows)]
    # A blank line carries no data; it is not a row.
    blank = (rows.drop(columns="line_number") == "").all(axis=1)
    return rows[~blank].reset_index(drop=True)
