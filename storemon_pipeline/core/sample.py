"""Realistic synthetic source data, written in the 2023 format of the public dataset.

    python -m storemon_pipeline.core.sample --stores 300 --days 9 --seed 1 --out data/sample
    python -m storemon_pipeline.core.sample --real-dir ../shared/data/loop --out /tmp/full   # full size
    python -m storemon_pipeline.core.sample --stores 2000 --truth /tmp/truth --truth-family blips --out /tmp/b

The sample covers what the report must get right: polls roughly hourly with jitter and gaps,
runs of inactive polls (outages), US and non-US zones, stores with no time zone or no hours,
split shifts, hours past midnight, closed weekdays, 23:59:59 ends, whole-day rows, and a week
that crosses the US spring-forward change (2023-03-12). Everything is vectorised: the same
code generates the benchmark datasets with millions of polls.

With ``--truth DIR`` the polls are sampled from a generated true status timeline instead,
and DIR receives that timeline (``timeline.csv``: store_id, start_utc, end_utc, status) and
the true report (``report.csv``: the report's columns, computed from the timeline within the
same business hours). Two families of truth (``--truth-family``):

- ``markov``: alternating up and down spans of exponential lengths, rates drawn per store;
- ``blips``: not Markov: many 5-20 minute blips (most fall between hourly polls), a few
  outages of hours, outages likelier at busy local hours (11-14 and 17-21), and a quarter of
  the stores down 02:00-02:45 local every night for maintenance.
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
    # The public file prints 2 to 6 fractional digits: a poll's time is what is printed.
    fraction_digits = rng.integers(2, 7, size=m)
    offset_us = offset_us // 10 ** (6 - fraction_digits) * 10 ** (6 - fraction_digits)
    timestamps = start.to_datetime64().astype("datetime64[us]") + offset_us.astype("timedelta64[us]")
    return pd.DataFrame(
        {
            # Categorical: 18M polls of the 10x benchmark must not hold 18M id strings.
            "store_id": pd.Categorical.from_codes(store_index, categories=ids),
            "status": np.where(inactive, "inactive", "active"),
            "timestamp_utc": timestamps,
            "fraction_digits": fraction_digits,
        }
    )


TRUTH_FAMILIES = ("markov", "blips")
# Local hours at which outages of the blips family start more often (busy hours).
BUSY_HOURS = np.isin(np.arange(24), [11, 12, 13, 17, 18, 19, 20])
BUSY_FACTOR = 3
HOUR_US = 3600 * 10**6


def _outages_markov(n: int, span_us: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(store index, start, end) of down spans, in µs from the timeline's start: alternating
    exponential up and down spans, the mean up span (5-60 h) and down span (10 min-3 h) drawn per store."""
    mean_up = np.exp(rng.uniform(np.log(5), np.log(60), n)) * HOUR_US
    mean_down = np.exp(rng.uniform(np.log(1 / 6), np.log(3), n)) * HOUR_US
    spans = int(span_us / (5 * HOUR_US) * 3) + 20  # enough pairs to outlast the timeline
    up = rng.exponential(1.0, (n, spans)) * mean_up[:, None]
    down = rng.exponential(1.0, (n, spans)) * mean_down[:, None]
    # Start at a random phase: the first span is up or down in proportion to their means.
    lead = rng.random(n) * (mean_up + mean_down)
    ends_of_up = np.cumsum(up + down, axis=1) - down - lead[:, None]
    store = np.repeat(np.arange(n), spans)
    start, end = ends_of_up.ravel(), (ends_of_up + down).ravel()
    keep = (end > 0) & (start < span_us)
    return store[keep], start[keep].astype(np.int64), end[keep].astype(np.int64)


def _outages_blips(
    n: int, span_us: int, utc_offset_h: np.ndarray, start: pd.Timestamp, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(store index, start, end) of outages, in µs from the timeline's start (see the module's docstring)."""
    hours = span_us / HOUR_US
    parts = []
    # (outages per hour outside busy hours, shortest and longest in minutes); busy hours: 3x.
    for rate_per_hour, low_min, high_min in ((1 / 12, 5, 20), (1 / 150, 60, 360)):
        count = rng.poisson(rate_per_hour * BUSY_FACTOR * hours, n)  # at the busy rate, then thinned
        store = np.repeat(np.arange(n), count)
        at = rng.uniform(0, span_us, len(store)).astype(np.int64)
        local_hour = (((start.value // 1000 + at) // HOUR_US + utc_offset_h[store]) % 24).astype(int)
        keep = rng.random(len(store)) < np.where(BUSY_HOURS[local_hour], 1.0, 1.0 / BUSY_FACTOR)
        length = rng.uniform(low_min, high_min, len(store)) * 60 * 10**6
        parts.append((store[keep], at[keep], at[keep] + length[keep].astype(np.int64)))
    # A quarter of the stores: down 02:00-02:45 local every night.
    maintained = np.flatnonzero(rng.random(n) < 0.25)
    first_day = (start.value // 1000) // (24 * HOUR_US) - 1
    days = np.arange(first_day, first_day + int(hours // 24) + 3)
    store = np.repeat(maintained, len(days))
    night = np.tile(days, len(maintained)) * 24 * HOUR_US + (2 - utc_offset_h[store]) * HOUR_US - start.value // 1000
    parts.append((store, night, night + 45 * 60 * 10**6))
    return tuple(np.concatenate(column) for column in zip(*parts))


def generate_truth(
    ids: np.ndarray, zones: pd.DataFrame, end: pd.Timestamp, days: float, family: str, rng: np.random.Generator
) -> pd.DataFrame:
    """The true timeline: per store, consecutive intervals (start_utc, end_utc, status) covering
    [end - days - 1 day, end + 1 day); the outages of ``family`` are the inactive ones."""
    start = end - pd.Timedelta(days=days + 1)
    span_us = int((days + 2) * 24 * HOUR_US)
    n = len(ids)
    if family == "markov":
        store, down_start, down_end = _outages_markov(n, span_us, rng)
    else:
        zone_of = dict(zip(zones["store_id"], zones["timezone_str"]))
        # The zone's standard offset at the timeline's start is local enough for busy hours.
        offsets = {
            zone: int(pd.Timestamp(start).tz_localize("UTC").tz_convert(zone).utcoffset().total_seconds() // 3600)
            for zone in set(zone_of.values()) | {"America/Chicago"}
        }
        utc_offset_h = np.array([offsets[zone_of.get(store_id, "America/Chicago")] for store_id in ids])
        store, down_start, down_end = _outages_blips(n, span_us, utc_offset_h, start, rng)
    down = pd.DataFrame(
        {"store": store, "start": np.clip(down_start, 0, span_us), "end": np.clip(down_end, 0, span_us)}
    )
    down = down[down["end"] > down["start"]]
    with duckdb.connect() as conn:
        conn.register("down", down)
        conn.register("stores", pd.DataFrame({"store": np.arange(n), "store_id": ids}))
        # Overlapping outages merge; the gaps between them (and around them) are up.
        return conn.execute(
            f"""
            WITH ordered AS (
                SELECT *, max("end") OVER (PARTITION BY store ORDER BY start, "end"
                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
                FROM down
            ),
            grouped AS (
                SELECT *, sum(CASE WHEN reach IS NULL OR start > reach THEN 1 ELSE 0 END)
                          OVER (PARTITION BY store ORDER BY start, "end") AS outage
                FROM ordered
            ),
            outages AS (SELECT store, min(start) AS s, max("end") AS e FROM grouped GROUP BY store, outage),
            edges AS (
                SELECT store, 0 AS s, 0 AS e FROM stores
                UNION ALL SELECT store, s, e FROM outages
                UNION ALL SELECT store, {span_us}, {span_us} FROM stores
            ),
            pieces AS (
                SELECT store, s, e, lead(s) OVER (PARTITION BY store ORDER BY s, e) AS next_s FROM edges
            ),
            timeline AS (
                SELECT store, s AS a, e AS b, 'inactive' AS status FROM pieces WHERE e > s
                UNION ALL SELECT store, e, next_s, 'active' FROM pieces WHERE next_s > e
            )
            SELECT stores.store_id,
                   TIMESTAMP '{start}' + to_microseconds(a) AS start_utc,
                   TIMESTAMP '{start}' + to_microseconds(b) AS end_utc,
                   status
            FROM timeline JOIN stores USING (store)
            ORDER BY store, a
            """
        ).df()


def status_at(truth: pd.DataFrame, ids: np.ndarray, polls: pd.DataFrame) -> np.ndarray:
    """The true status of each poll (``polls``: store_id as codes of ``ids``, timestamp_utc)."""
    with duckdb.connect() as conn:
        conn.register("truth", truth)
        conn.register(
            "polls",
            pd.DataFrame(
                {"n": np.arange(len(polls)), "store_id": ids[polls["store_id"].cat.codes], "t": polls["timestamp_utc"]}
            ),
        )
        return (
            conn.execute(
                """
            SELECT truth.status FROM polls
            ASOF JOIN truth ON polls.store_id = truth.store_id AND polls.t >= truth.start_utc
            ORDER BY polls.n
            """
            )
            .df()["status"]
            .to_numpy()
        )


def true_report(source_dir: Path, truth: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The report's columns from the true timeline: true up and down time within the same
    business hours (the report's own localized_business_hours), unrounded."""
    from storemon_pipeline.core.report import key_polls, prepare_report, run_sql

    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(
            f"""
            CREATE TABLE sample_polls AS SELECT CAST(store_id AS VARCHAR) AS store_id,
                CAST(replace(timestamp_utc, ' UTC', '') AS TIMESTAMP) AS timestamp_utc, status
                FROM read_csv('{source_dir / "store_status.csv.gz"}', all_varchar = true);
            CREATE TABLE raw_business_hours AS SELECT CAST(store_id AS VARCHAR) AS store_id,
                CAST(dayOfWeek AS TINYINT) AS day_of_week, CAST(start_time_local AS TIME) AS start_time_local,
                CAST(end_time_local AS TIME) AS end_time_local
                FROM read_csv('{source_dir / "business_hours.csv"}', all_varchar = true);
            CREATE TABLE raw_store_timezones AS SELECT CAST(store_id AS VARCHAR) AS store_id, timezone_str
                FROM read_csv('{source_dir / "timezones.csv"}', all_varchar = true);
            """
        )
        key_polls(conn, "sample_polls")
        prepare_report(conn, as_of.to_pydatetime())
        run_sql(conn, "localized_business_hours")
        conn.register("truth", truth)
        return conn.execute(
            """
            WITH p AS (SELECT as_of FROM report_as_of),
            windows AS (
                SELECT * FROM (VALUES ('hour', INTERVAL 1 HOUR, 60), ('day', INTERVAL 24 HOUR, 3600),
                                      ('week', INTERVAL 168 HOUR, 3600)) AS w(name, length, unit)
            ),
            cut AS (  -- each true interval within each business interval and window
                SELECT s.store_id, w.name, w.unit, t.status,
                       greatest(0, epoch(least(b.end_utc, t.end_utc, p.as_of))
                                   - epoch(greatest(b.start_utc, t.start_utc, p.as_of - w.length))) AS seconds
                FROM localized_business_hours b JOIN report_stores s USING (store_key)
                JOIN truth t ON t.store_id = s.store_id AND t.end_utc > b.start_utc AND t.start_utc < b.end_utc,
                     windows w, p
                WHERE b.end_utc > p.as_of - w.length AND b.start_utc < p.as_of
            ),
            totals AS (
                SELECT store_id, name, unit,
                       sum(seconds) FILTER (WHERE status = 'active') AS up,
                       sum(seconds) FILTER (WHERE status = 'inactive') AS down
                FROM cut GROUP BY ALL
            )
            SELECT s.store_id,
                   coalesce(max(up / unit) FILTER (WHERE name = 'hour'), 0) AS uptime_last_hour,
                   coalesce(max(up / unit) FILTER (WHERE name = 'day'), 0) AS uptime_last_day,
                   coalesce(max(up / unit) FILTER (WHERE name = 'week'), 0) AS uptime_last_week,
                   coalesce(max(down / unit) FILTER (WHERE name = 'hour'), 0) AS downtime_last_hour,
                   coalesce(max(down / unit) FILTER (WHERE name = 'day'), 0) AS downtime_last_day,
                   coalesce(max(down / unit) FILTER (WHERE name = 'week'), 0) AS downtime_last_week
            FROM report_stores s LEFT JOIN totals USING (store_id)
            GROUP BY s.store_id ORDER BY s.store_id
            """
        ).df()


def write_polls(conn: duckdb.DuckDBPyConnection, polls: pd.DataFrame, path: Path) -> None:
    conn.register("generated_polls", polls)
    write_query(
        conn,
        """
        SELECT CAST(store_id AS VARCHAR) AS store_id, status,
               strftime(timestamp_utc, '%Y-%m-%d %H:%M:%S') || '.'
               -- (DuckDB's microsecond() counts from the minute: the seconds are already printed)
               || substr(lpad(CAST(microsecond(timestamp_utc) % 1000000 AS VARCHAR), 6, '0'), 1, fraction_digits)
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
    truth_dir: Path | None = None,
    truth_family: str = "markov",
) -> dict[str, int]:
    """Write the three source files to ``out``; returns row counts.

    With ``real_dir`` the public dataset's business hours and time zones are used and polls
    are generated for all of its store ids (``stores`` is then ignored); ``scale`` > 1 adds
    ``scale - 1`` copies of every real store under new ids, with the same hours and zone.
    With ``truth_dir`` the polls are sampled from a true timeline of ``truth_family``, written
    there with the true report (the module's docstring).
    """
    if truth_dir is not None and (real_dir is not None or truth_family not in TRUTH_FAMILIES):
        raise ValueError(f"a truth needs generated stores and a family of {TRUTH_FAMILIES}")
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
        if truth_dir is None:
            polls = generate_polls(ids, end=end, days=days, rng=rng)
        else:
            truth = generate_truth(ids, zones, end, days, truth_family, rng)
            polls = generate_polls(ids, end=end, days=days, rng=rng, outage_rate=0.0)
            polls["status"] = status_at(truth, ids, polls)
        write_polls(conn, polls, out / polls_name)
    counts = {"stores": len(ids), "polls": len(polls), "business_hours": hours_rows, "timezones": zone_rows}
    if truth_dir is not None:
        truth_dir = Path(truth_dir)
        as_of = pd.Timestamp(polls["timestamp_utc"].max())
        with duckdb.connect() as conn:
            write_frame(conn, truth, truth_dir / "timeline.csv")
            write_frame(conn, true_report(out, truth, as_of), truth_dir / "report.csv")
        counts["true_outages"] = int((truth["status"] == "inactive").sum())
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=300)
    parser.add_argument("--days", type=float, default=9)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", default=str(DEFAULT_END), help="UTC time of the last poll slot")
    parser.add_argument("--real-dir", type=Path, help="use this folder's real hours, zones and store ids")
    parser.add_argument("--scale", type=int, default=1, help="with --real-dir: copies of every real store (new ids)")
    parser.add_argument(
        "--truth", type=Path, help="sample the polls from a true timeline; write it and the true report here"
    )
    parser.add_argument("--truth-family", choices=TRUTH_FAMILIES, default="markov", help="with --truth: its family")
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
        truth_dir=args.truth,
        truth_family=args.truth_family,
    )
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()), f"-> {args.out}")


if __name__ == "__main__":
    main()
