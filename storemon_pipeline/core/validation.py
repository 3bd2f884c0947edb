"""Row validation, set-based in DuckDB: each source's rules, stated once, as SQL.

A source's lines (sources.read_lines) are split into fields, normalised (trimmed, parsed to
types) and checked against the rules below. A row that breaks any rule is rejected with its
line number, every reason, and the line as written (at most 200 characters); every other
row is kept.

(pandera stated these rules before; it needed every row in pandas first, which cost more
than reading the file, and numbering rows from a DataFrame cannot survive a broken line.)
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from functools import cache

import duckdb

from storemon_pipeline.core.db import fetch_row
from storemon_pipeline.core.report_request import (
    CONTROL_CHARACTER,
    FORMULA_STARTS,
    STORE_ID_MAX_CHARACTERS,
    STORE_ID_PROBLEMS,
)
from storemon_pipeline.core.sources import SHOWN_CHARACTERS, Header, SourceSpec

STATUSES = ("active", "inactive")
FUTURE_TOLERANCE_MINUTES = 10
TIME_PATTERN = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?"
END_TIME_PATTERN = rf"{TIME_PATTERN}|24:00(?::00)?"  # 24:00 ends a day at midnight, like 23:59:59


@cache
def valid_timezones() -> frozenset[str]:
    """IANA names known both to Python's zoneinfo (the oracle) and to DuckDB's ICU (the engine)."""
    with duckdb.connect() as conn:
        icu_names = {row[0] for row in conn.sql("SELECT name FROM pg_timezone_names()").fetchall()}
    return frozenset(zoneinfo.available_timezones() & icu_names)


@dataclass(frozen=True)
class Rule:
    column: str  # the file's column the reason names (its text value is shown)
    broken: str  # SQL: true when the row breaks the rule (text columns by name; parsed ones as parsed_*)
    problem: str


STORE_ID_RULES = [
    Rule("store_id", "store_id = ''", STORE_ID_PROBLEMS["empty"]),
    # (bytes bound characters from above, and strlen needs no pass over the text)
    Rule(
        "store_id",
        f"strlen(store_id) > {STORE_ID_MAX_CHARACTERS} AND length(store_id) > {STORE_ID_MAX_CHARACTERS}",
        STORE_ID_PROBLEMS["long"],
    ),
    # A spreadsheet would run such an id as a formula when someone opens a report. (Each of
    # these characters sorts before 'A': the comparison spares most ids the substring.)
    Rule(
        "store_id",
        f"store_id < 'A' AND left(store_id, 1) IN ({', '.join(repr(start) for start in FORMULA_STARTS)})",
        STORE_ID_PROBLEMS["formula"],
    ),
    # Ids that differ only by an invisible character would look the same wherever shown.
    # (Other columns need no such rule: a control character fails their own.)
    Rule("store_id", f"regexp_matches(store_id, '{CONTROL_CHARACTER}')", STORE_ID_PROBLEMS["control"]),
]
POLL_RULES = [
    *STORE_ID_RULES,
    # (lower() only for a status not already written in lower case)
    Rule("status", f"status NOT IN {STATUSES} AND lower(status) NOT IN {STATUSES}", "is not active or inactive"),
    Rule("timestamp_utc", "parsed_timestamp IS NULL", "is not a timestamp like 2023-01-22 12:09:39.388884 UTC"),
    # A poll from the future is a broken clock or a broken row: it would become every
    # report's as_of. A little skew between the poller's clock and this one is tolerated.
    Rule(
        "timestamp_utc",
        f"parsed_timestamp > CAST(now() AS TIMESTAMP) + INTERVAL {FUTURE_TOLERANCE_MINUTES} MINUTE",
        f"is more than {FUTURE_TOLERANCE_MINUTES} minutes in the future",
    ),
]
HOURS_RULES = [
    *STORE_ID_RULES,
    Rule("day_of_week", "parsed_day IS NULL", "is not an integer 0-6 (0 = Monday)"),
    Rule("start_time_local", f"NOT regexp_full_match(start_time_local, '{TIME_PATTERN}')", "is not a time HH:MM[:SS]"),
    Rule("end_time_local", f"NOT regexp_full_match(end_time_local, '{END_TIME_PATTERN}')", "is not a time HH:MM[:SS]"),
]
ZONE_RULES = [
    *STORE_ID_RULES,
    Rule(
        "timezone_str", "timezone_str NOT IN (SELECT name FROM valid_timezone_names)", "is not a known IANA time zone"
    ),
]

# Parsed columns each source's rules use, from the trimmed text columns.
PARSED = {
    "store_status": {
        # Both dataset versions: "2023-01-22 12:09:39.388884 UTC" (the plain cast, which
        # takes the UTC suffix and refuses any other zone or offset beside it, is half the
        # cost) and ISO 8601 with an offset (only TIMESTAMPTZ applies the offset).
        "parsed_timestamp": """CASE WHEN ends_with(timestamp_utc, ' UTC') THEN TRY_CAST(timestamp_utc AS TIMESTAMP)
                 ELSE CAST(CASE WHEN isfinite(TRY_CAST(timestamp_utc AS TIMESTAMPTZ))
                                THEN TRY_CAST(timestamp_utc AS TIMESTAMPTZ) END AS TIMESTAMP) END""",
    },
    "business_hours": {
        "parsed_day": "CASE WHEN TRY_CAST(day_of_week AS DOUBLE) IN (0, 1, 2, 3, 4, 5, 6) THEN CAST(TRY_CAST(day_of_week AS DOUBLE) AS TINYINT) END",
    },
    "timezones": {},
}
RULES = {"store_status": POLL_RULES, "business_hours": HOURS_RULES, "timezones": ZONE_RULES}
# What each source's checked table keeps of a row, as staged: only typed values, so the
# text they were parsed from is not copied.
STAGED = {
    "store_status": {
        "store_id": "store_id",
        "status": f"CASE WHEN status IN {STATUSES} THEN status ELSE lower(status) END",  # (lower() copies)
        "timestamp_utc": "parsed_timestamp",
    },
    "business_hours": {
        "store_id": "store_id",
        "day_of_week": "parsed_day",
        "start_time_local": "TRY_CAST(start_time_local AS TIME)",
        "end_time_local": "TRY_CAST(end_time_local AS TIME)",
    },
    "timezones": {"store_id": "store_id", "timezone_str": "timezone_str"},
}

# A line whose quotes do not make CSV fields: every field plain (no quote) or wholly quoted.
_FIELDS = r'(?:\s*(?:"(?:[^"]|"")*"|[^,"]*)\s*,)*'
_FIELD = r'\s*("(?:[^"]|"")*"|[^,"]*)\s*,'


def _shown(column: str) -> str:
    return (
        f"'''' || left({column}, {SHOWN_CHARACTERS}) || "
        f"CASE WHEN length({column}) > {SHOWN_CHARACTERS} THEN '…' ELSE '' END || ''''"
    )


@dataclass
class Checked:
    rows_read: int  # non-blank lines
    rows_rejected: int


def check_lines(
    conn: duckdb.DuckDBPyConnection, spec: SourceSpec, header: Header, lines: str, checked: str, source_file: str
) -> Checked:
    """Split ``lines`` into fields and check every rule. Every row goes to the table
    ``checked``: line_number, the STAGED columns, malformed, and reason ('' for a row that
    passes); rejected lines also go to ``staged_rejections``."""
    width = len(header.names)
    if spec.name == "timezones":
        _register_timezone_names(conn)
    columns = ", ".join(f"fields[{position + 1}] AS {name}" for name, position in header.columns.items())
    parsed = "".join(f", {sql} AS {name}" for name, sql in PARSED[spec.name].items())
    reasons = ", ".join(
        f"CASE WHEN {rule.broken} THEN '{rule.column} {rule.problem} (got ' || {_shown(rule.column)} || ')' END"
        for rule in RULES[spec.name]
    )
    staged = ", ".join(f"{sql} AS {name}" for name, sql in STAGED[spec.name].items())
    broken = " OR ".join(f"coalesce({rule.broken}, false)" for rule in RULES[spec.name])
    conn.execute(
        f"""
        CREATE OR REPLACE TABLE {checked} AS
        WITH split AS (
            SELECT line_number, line, reason AS unreadable, raw_values AS unreadable_values,
                   CASE WHEN NOT contains(line, '"') THEN string_split(line, ',')
                        WHEN regexp_full_match(line || ',', '{_FIELDS}') THEN list_transform(
                            regexp_extract_all(line || ',', '{_FIELD}', 1),
                            lambda f: CASE WHEN starts_with(f, '"') THEN replace(f[2:-2], '""', '"') ELSE f END)
                   END AS fields
            FROM {lines}
            -- A blank line (or one of only commas) carries no data: it is not a row. (Every
            -- character of such a line sorts before '-': most lines are ruled out by that
            -- comparison before the regular expression has to run.)
            WHERE reason IS NOT NULL OR (line <> '' AND NOT (line < '-' AND regexp_full_match(line, '[\\s,]*')))
        ),
        shaped AS (
            SELECT line_number, line, unreadable_values,
                   CASE WHEN unreadable IS NOT NULL THEN unreadable
                        WHEN fields IS NULL THEN 'malformed CSV line: a quoted field is not closed, or is followed by more than a comma'
                        WHEN len(fields) <> {width} THEN 'malformed CSV line: expected {width} fields, saw ' || len(fields)
                   END AS malformed,
                   -- (trimming every field costs more than the split: only lines with space at a field's edge need it)
                   CASE WHEN contains(line, ' ,') OR contains(line, ', ') OR contains(line, chr(9)) OR contains(line, chr(13))
                             OR starts_with(line, ' ') OR ends_with(line, ' ') OR contains(line, '"')
                        THEN list_transform(fields, lambda f: trim(f, ' ' || chr(9) || chr(13))) ELSE fields END AS fields
            FROM split
        ),
        typed AS (
            SELECT line_number, line, unreadable_values, malformed, {columns}{parsed}
            FROM shaped
        ),
        judged AS (
            -- (the reasons' text only for the rows that break a rule)
            SELECT *, CASE WHEN malformed IS NOT NULL THEN malformed
                           WHEN {broken} THEN concat_ws('; ', {reasons}) ELSE '' END AS reason
            FROM typed
        )
        SELECT line_number, {staged}, malformed, reason,
               CASE WHEN reason <> '' THEN coalesce(unreadable_values, left(line, {SHOWN_CHARACTERS})) END AS raw_values
        FROM judged
        """
    )
    conn.execute(
        f"""
        INSERT INTO staged_rejections
        SELECT '{spec.name}', ?, line_number, reason, raw_values
        FROM {checked} WHERE reason <> '' ORDER BY line_number
        """,
        [source_file],
    )
    rows_read, rows_rejected = fetch_row(conn, f"SELECT count(*), count(*) FILTER (WHERE reason <> '') FROM {checked}")
    return Checked(rows_read=rows_read, rows_rejected=rows_rejected)


def _register_timezone_names(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE OR REPLACE TEMP TABLE valid_timezone_names (name VARCHAR PRIMARY KEY)")
    conn.execute("INSERT INTO valid_timezone_names SELECT unnest(?)", [sorted(valid_timezones())])
