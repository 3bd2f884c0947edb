"""A demo feed: the sample, ending at the current hour, and one more hour of polls appended
to it at every interval, so that the schedule, the sensor and the freshness check have
something to do (``STOREMON_DEMO_FEED=1 make run``).

    python -m storemon_pipeline.core.demo_feed --out DIR [--interval-seconds 3600] [--end TIME] [--once]

The poll file is plain CSV (``store_status.csv``), so ingestion reads each new hour
incrementally; every append is one write of whole lines. An hour is appended only once it
has ended (polls from the future would be rejected), so the feed never runs ahead of the
clock; ``--end`` starts it in the past, to replay hours faster.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from storemon_pipeline.core import sample

SEED = 1
STORES = 300
DAYS = 9
POLLS_FILE = "store_status.csv"


def current_hour() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("h")


def start(out: Path, end: pd.Timestamp | None = None) -> pd.Timestamp:
    """The sample (with a plain poll file) ending at ``end`` (default: this hour); returns it."""
    end = end or current_hour()
    sample.generate(out, stores=STORES, days=DAYS, seed=SEED, end=end, polls_name=POLLS_FILE)
    return end


def append_hour(out: Path, hour_end: pd.Timestamp, seed: int) -> int:
    """Append the polls of the hour before ``hour_end`` for the sample's stores; returns how many."""
    ids = sample.store_ids(STORES, np.random.default_rng(SEED))  # the sample's ids: drawn first from its seed
    polls = sample.generate_polls(ids, end=hour_end, days=1 / 24, rng=np.random.default_rng(seed))
    lines_file = out / f".{POLLS_FILE}.next-hour"
    with duckdb.connect() as conn:
        sample.write_polls(conn, polls, lines_file)
    rows = lines_file.read_bytes().split(b"\n", 1)[1]  # without the header
    with open(out / POLLS_FILE, "ab") as target:
        target.write(rows)  # whole lines in one write: a reader never sees half a poll
    lines_file.unlink()
    return len(polls)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--interval-seconds", type=float, default=3600)
    parser.add_argument("--once", action="store_true", help="append one hour and stop")
    parser.add_argument("--end", help="where the generated sample ends (default: this hour, UTC)")
    parser.add_argument("--keep", action="store_true", help="continue an existing poll file from this hour")
    args = parser.parse_args(argv)
    if args.keep and (args.out / POLLS_FILE).exists():
        hour = current_hour()
    else:
        hour = start(args.out, pd.Timestamp(args.end) if args.end else None)
        print(f"demo feed: sample of {STORES} stores up to {hour} UTC in {args.out}", flush=True)
    while True:
        if not args.once:
            time.sleep(args.interval_seconds)
        hour += pd.Timedelta(hours=1)
        time.sleep(max(0.0, (hour - pd.Timestamp.now(tz="UTC").tz_localize(None)).total_seconds()))
        added = append_hour(args.out, hour, seed=int(hour.timestamp()))
        print(f"demo feed: appended {added} polls up to {hour} UTC to {args.out / POLLS_FILE}", flush=True)
        if args.once:
            return


if __name__ == "__main__":
    main()
