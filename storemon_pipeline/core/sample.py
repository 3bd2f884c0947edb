"""Realistic synthetic source data, written in the 2023 format of the public dataset.

    python -m storemon_pipeline.core.sample --stores 300 --days 9 --seed 1 --out data/sample
    python -m storemon_pipeline.core.sample --real-dir ../shared/data/loop --out /tmp/full   # full size

The sample covers what the report must get right: polls roughly hourly with jitter and gaps,
runs of inactive polls (outages), US and non-US zones, stores with no time zone or no hours,
split shifts, hours past midnight, closed weekdays, 23:59:59 ends, whole-day rows, and a week
that crosses the US spring-forward change (2023-03-12). Everything is vectorised: the same
code generates the benchmark datasets with millions of polls.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from storemon_pipeline.core.db import fetch_value, write_query

DEFAULT_END = pd.Timestamp("2023-03-14 12:00:00")  # the preceding week crosses 2023-03-12 (US DST)
ZONES = np.array(
    [
        "America/Chicago",
        "America/New_York",
        "America/Denver",
        "America/Los_Angeles",
        "America/Phoenix",
        "America/Boise",
        "Europe/London",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Australia/Sydney",
        "America/Sao_Paulo",
    ]
)
# Business-hour patterns: (pattern, start, end) rows applied to each open weekday.
HOUR_PATTERNS = pd.DataFrame(
    [
        (0, "10:00:00", "22:00:00"),  # ordinary day
        (1, "11:00:00", "14:30:00"),  # split shift
        (1, "17:00:00", "22:00:00"),
        (2, "18:00:00", "02:00:00"),  # past midnight
        (3, "06:00:00", "23:59:59"),  # 23:59:59 means midnight
        (4, "00:00:00", "00:00:00"),  # start = end: the whole day
        (5, "09:30", "17:45"),  # HH:MM without seconds
        (6, "07:00:00", "15:00:00"),
        (6, "12:00:00", "20:00:00"),  # overlapping rows on one day
    ],
    columns=["pattern", "start_time_local", "end_time_local"],
)


def store_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """Numeric ids of up to 19 digits, as in the 2023 dataset, all distinct."""
    ids = np.unique(rng.integers(10**17, 9 * 10**18, size=int(n * 1.1) + 10))[:n]
    rng.shuffle(ids)
    return ids.astype(str)


def generate_hours(ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = len(ids)
    has_hours = rng.random(n) >= 0.15  # the rest have no rows: open 24x7
    pattern = rng.integers(0, HOUR_PATTERNS["pattern"].max() + 1, size=n)
    stores = pd.DataFrame({"store_id": ids[has_hours], "pattern": pattern[has_hours]})
    days = pd.DataFrame({"dayOfWeek": np.arange(7)})
    open_days = stores.merge(days, how="cross")
    # About one store in three is closed on one or two weekdays.
    closed = rng.random(len(open_days)) < np.where(open_days.index % 7 < 2, 0.3, 0.0)
    open_days = open_days[~closed]
    hours = open_days.merge(HOUR_PATTERNS, on="pattern").drop(columns="pattern")
    return hours.sort_values(["store_id", "dayOfWeek", "start_time_local"]).reset_index(drop=True)


def generate_timezones(ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    keep = rng.random(len(ids)) >= 0.1  # the rest fall back to America/Chicago
    # Mostly US zones, as in the public dataset, with some elsewhere.
    weights = np.array([30, 20, 10, 15, 5, 4, 4, 4, 3, 3, 2], dtype=float)
    zones = rng.choice(ZONES, size=len(ids), p=weights / weights.sum())
    return pd.DataFrame({"store_id": ids[keep], "timezone_str": zones[keep]})


def generate_polls(
    ids: np.ndarray,
    end: pd.Timestamp,
    days: float,
    rng: np.random.Generator,
    keep_fraction: float = 0.67,
    outage_rate: float = 0.02,
    mean_outage_polls: float = 4.0,
) -> pd.DataFrame:
    """Roughly hourly polls per store with jitter, gaps and runs of inactive polls."""
    slots = int(days * 24)
    start = end - pd.Timedelta(hours=slots)
    n = len(ids)
    store_index = np.repeat(np.arange(n, dtype=np.int64), slots)
    slot = np.tile(np.arange(slots, dtype=np.int64), n)
    jitter_us = rng.integers(-20 * 60 * 10**6, 20 * 60 * 10**6, size=n * slots)
    offset_us = slot * 3600 * 10**6 + jitter_us + 30 * 60 * 10**6
    keep = rng.random(n * slots) < keep_fraction
    store_index, offset_us = store_index[keep], offset_us[keep]
    # Outages: a run starts at some polls and lasts a geometric number of polls, never
    # spilling into the next store.
    m = len(store_index)
    store_end = np.searchsorted(store_index, store_index, side="right")
    starts = rng.random(m) < outage_rate
    lengths = rng.geometric(1.0 / mean_outage_polls, size=m)
    outage_end = np.where(starts, np.minimum(np.arange(m) + lengths, store_end), 0)
    inactive = np.maximum.accumulate(outage_end) > np.arange(m)
    timestamps = start.to_datetime64().astype("datetime64[us]") + offset_us.astype("timedelta64[us]")
    return pd.DataFrame(
        {
            # Categorical: 18M polls of the 10x benchmark must not hold 18M id strings.
            "store_id": pd.Categorical.from_codes(store_index, categories=ids),
            "status": np.where(inactive, "inactive", "active"),
            "timestamp_utc": timestamps,
            # The public file prints 2 to 6 fractional digits.
            "fraction_digits": rng.integers(2, 7, size=m),
        }
    )


def write_polls(conn: duckdb.DuckDBPyConnection, polls: pd.DataFrame, path: Path) -> None:
    conn.register("generated_polls", polls)
    write_query(
        conn,
        """
        SELECT CAST(store_id AS VARCHAR) AS store_id, status,
               strftime(timestamp_utc, '%Y-%m-%d %H:%M:%S') || '.'
               || substr(lpad(CAST(microsecond(timestamp_utc) AS VARCHAR), 6, '0'), 1, fraction_digits)
               || ' UTC' AS timestamp_utc
        FROM generated_polls ORDER BY 3, 1  -- the printed timestamp and id, as text
        """,
        path,
    )
    conn.unregister("generated_polls")


def write_frame(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame, path: Path) -> None:
    conn.register("generated_frame", frame)
    write_query(conn, "SELECT * FROM generated_frame", path)
    conn.unregister("generated_frame")


def real_store_ids(real_dir: Path) -> np.ndarray:
    """Every store id of the public dataset (hours, zones and the poll head)."""
    with duckdb.connect() as conn:
        rows = conn.execute(
            """
            SELECT DISTINCT store_id FROM (
                SELECT CAST(store_id AS VARCHAR) AS store_id FROM read_csv($hours, all_varchar = true)
                UNION ALL SELECT CAST(store_id AS VARCHAR) FROM read_csv($zones, all_varchar = true)
                UNION ALL SELECT CAST(store_id AS VARCHAR) FROM read_csv($polls, all_varchar = true)
            ) ORDER BY 1
            """,
            {
                "hours": str(real_dir / "business_hours.csv.gz"),
                "zones": str(real_dir / "timezones.csv.gz"),
                "polls": str(real_dir / "store_status.csv.gz"),
            },
        ).fetchall()
    return np.array([r[0] for r in rows])


def generate(
    out: Path,
    stores: int = 300,
    days: float = 9,
    seed: int = 1,
    end: pd.Timestamp = DEFAULT_END,
    real_dir: Path | None = None,
    polls_name: str = "store_status.csv.gz",
    scale: int = 1,
) -> dict[str, int]:
    """Write the three source files to ``out``; returns row counts.

    With ``real_dir`` the public dataset's business hours and time zones are used and polls
    are generated for all of its store ids (``stores`` is then ignored); ``scale`` > 1 adds
    ``scale - 1`` copies of every real store under new ids, with the same hours and zone.
    """
    rng = np.random.default_rng(seed)
    out = Path(out)
    with duckdb.connect() as conn:
        if real_dir is not None:
            real_ids = real_store_ids(Path(real_dir))
            ids = np.concatenate([real_ids, store_ids(len(real_ids) * (scale - 1), rng)])
            if len(np.unique(ids)) != len(ids):
                raise ValueError("a generated store id collides with a real one; try another seed")
            conn.register("store_copies", pd.DataFrame({"store_id": np.tile(real_ids, scale), "copy_id": ids}))
            for name in ("business_hours.csv.gz", "timezones.csv.gz"):
                write_query(
                    conn,
                    f"""
                    SELECT copies.copy_id AS store_id, source.* EXCLUDE (store_id)
                    FROM read_csv('{Path(real_dir) / name}', all_varchar = true) AS source
                    JOIN store_copies AS copies USING (store_id)
                    ORDER BY copies.copy_id
                    """,
                    out / name,
                )
            hours_rows = fetch_value(conn, f"SELECT count(*) FROM '{out / 'business_hours.csv.gz'}'")
            zone_rows = fetch_value(conn, f"SELECT count(*) FROM '{out / 'timezones.csv.gz'}'")
        else:
            ids = store_ids(stores, rng)
            hours, zones = generate_hours(ids, rng), generate_timezones(ids, rng)
            write_frame(conn, hours, out / "business_hours.csv")
            write_frame(conn, zones, out / "timezones.csv")
            hours_rows, zone_rows = len(hours), len(zones)
        polls = generate_polls(ids, end=end, days=days, rng=rng)
        write_polls(conn, polls, out / polls_name)
    return {"stores": len(ids), "polls": len(polls), "business_hours": hours_rows, "timezones": zone_rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=300)
    parser.add_argument("--days", type=float, default=9)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", default=str(DEFAULT_END), help="UTC time of the last poll slot")
    parser.add_argument("--real-dir", type=Path, help="use this folder's real hours, zones and store ids")
    parser.add_argument("--scale", type=int, default=1, help="with --real-dir: copies of every real store (new ids)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    counts = generate(
        args.out,
        stores=args.stores,
        days=args.days,
        seed=args.seed,
        end=pd.Timestamp(args.end),
        real_dir=args.real_dir,
        scale=args.scale,
    )
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()), f"-> {args.out}")


if __name__ == "__main__":
    main()
