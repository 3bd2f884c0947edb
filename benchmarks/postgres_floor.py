"""The Postgres warehouse's own floor: what moving the polls into Postgres and back costs,
with nothing of storemon's around it.

    python -m benchmarks.steps postgres_floor --source DIR --warehouse postgresql://...

The polls are read and keyed as the floor script reads them (benchmarks/floor.py), written once as
CSV, then timed: ``COPY`` into a table with the warehouse's polls key (the one storemon
writes), ``COPY`` of the same rows into a table with no index (what the key costs), and the
``COPY`` out that a report's snapshot makes (binary, as storemon's; reading it is left out).
A report through the Postgres warehouse cannot cost less than the embedded one plus the
keyed ``COPY`` in and the ``COPY`` out: the benchmark prints that sum beside the
`storemon report` through Postgres.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.floor import read_keyed_polls

POLLS_TABLE = """
CREATE TABLE {name} (
    store_key INTEGER NOT NULL, timestamp_utc TIMESTAMP NOT NULL, status text COLLATE "C" NOT NULL,
    load_id BIGINT NOT NULL, inactive_from_load BIGINT {key}
)"""
WAREHOUSE_KEY = ", PRIMARY KEY (timestamp_utc, store_key)"  # as storemon's Postgres warehouse


def postgres_round_trip(source: Path, url: str) -> dict:
    import psycopg2

    phases = {}
    with tempfile.TemporaryDirectory(prefix="storemon-pg-floor-") as scratch:
        polls, out = Path(scratch) / "polls.csv", Path(scratch) / "out.bin"
        duck = duckdb.connect()
        duck.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'")
        read_keyed_polls(duck, source)
        duck.execute(
            f"COPY (SELECT store_key, timestamp_utc, status, 1 FROM raw_store_polls) TO '{polls}' (FORMAT csv, HEADER false)"
        )
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                for phase, name, key in (
                    ("copy_in_keyed", "polls_keyed", WAREHOUSE_KEY),
                    ("copy_in_unindexed", "polls_plain", ""),
                ):
                    cur.execute(POLLS_TABLE.format(name=name, key=key))
                    conn.commit()
                    started = time.perf_counter()
                    with open(polls, "rb") as data:
                        cur.copy_expert(
                            f"COPY {name} (store_key, timestamp_utc, status, load_id) FROM STDIN WITH (FORMAT csv)",
                            data,
                        )
                    conn.commit()
                    phases[f"{phase}_seconds"] = time.perf_counter() - started
                started = time.perf_counter()
                with open(out, "wb") as target:
                    cur.copy_expert(
                        "COPY (SELECT store_key, timestamp_utc, status = 'active' FROM polls_keyed) "
                        "TO STDOUT WITH (FORMAT binary)",
                        target,
                    )
                conn.commit()
                phases["copy_out_seconds"] = time.perf_counter() - started
        finally:
            conn.close()
        rows = duck.execute("SELECT count(*) FROM raw_store_polls").fetchall()[0][0]
        duck.close()
    # What the Postgres warehouse adds to a report at the least: its keyed COPY in, and the COPY out.
    seconds = phases["copy_in_keyed_seconds"] + phases["copy_out_seconds"]
    return {"seconds": seconds, "polls": rows, **phases}
