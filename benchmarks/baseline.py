"""The side-by-side baseline: the report as most existing implementations compute it.

A straightforward pandas program that loops over stores: for each store it filters the poll,
hours and zone frames, builds that store's business hours in UTC date by date with zoneinfo,
keeps the polls inside them and measures the nearest-poll cells against each window. The
semantics are storemon's (docs/report.md), so its numbers can be compared with storemon's;
only the way of computing differs. Not used by the product.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

DEFAULT_TIMEZONE = "America/Chicago"
WINDOWS = {
    "last_hour": (pd.Timedelta(hours=1), 60.0),
    "last_day": (pd.Timedelta(days=1), 3600.0),
    "last_week": (pd.Timedelta(days=7), 3600.0),
}
MIDNIGHT_ALIAS = time(23, 59, 59)
FAR_PAST, FAR_FUTURE = pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01")


def load_sources(source_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three files as most implementations read them: whole, with pandas."""
    source_dir = Path(source_dir)
    polls = pd.read_csv(next(source_dir.glob("store_status.csv*")), dtype={"store_id": str})
    polls["timestamp_utc"] = pd.to_datetime(polls["timestamp_utc"].str.removesuffix(" UTC"), format="ISO8601")
    polls["status"] = polls["status"].str.strip().str.lower()
    hours = pd.read_csv(next(source_dir.glob("business_hours.csv*")), dtype={"store_id": str})
    hours = hours.rename(columns={"day": "dayOfWeek"})
    zones = pd.read_csv(next(source_dir.glob("timezones.csv*")), dtype={"store_id": str})
    return polls, hours, zones


def _to_utc(local: datetime, zone: ZoneInfo) -> pd.Timestamp:
    return pd.Timestamp(local.replace(tzinfo=zone, fold=0).astimezone(timezone.utc).replace(tzinfo=None))


def _clock(text: str) -> time:
    return time.fromisoformat(text.strip())


def business_hours_utc(
    store_hours: pd.DataFrame, zone: ZoneInfo, first: pd.Timestamp, last: pd.Timestamp
) -> pd.DataFrame:
    """The store's business hours as merged UTC [start, end) rows between two local dates."""
    if store_hours.empty:
        return pd.DataFrame({"start": [FAR_PAST], "end": [FAR_FUTURE]})  # open 24x7
    intervals = []
    for day in pd.date_range(first.normalize(), last.normalize(), freq="D"):
        for row in store_hours[store_hours["dayOfWeek"] == day.weekday()].itertuples():
            start, end = _clock(row.start_time_local), _clock(row.end_time_local)
            local_start = datetime.combine(day.date(), start)
            if start == end:
                local_start, local_end = (
                    datetime.combine(day.date(), time()),
                    datetime.combine(day.date() + timedelta(days=1), time()),
                )
            elif end == MIDNIGHT_ALIAS:
                local_end = datetime.combine(day.date() + timedelta(days=1), time())
            elif end < start:
                local_end = datetime.combine(day.date() + timedelta(days=1), end)
            else:
                local_end = datetime.combine(day.date(), end)
            utc_start, utc_end = _to_utc(local_start, zone), _to_utc(local_end, zone)
            if utc_end > utc_start:
                intervals.append((utc_start, utc_end))
    frame = pd.DataFrame(intervals, columns=["start", "end"]).sort_values("start")
    # Merge overlapping rows (gaps and islands).
    island = (frame["start"] > frame["end"].cummax().shift()).cumsum()
    return frame.groupby(island).agg(start=("start", "min"), end=("end", "max")).reset_index(drop=True)


def overlap_seconds(intervals: pd.DataFrame, lo, hi) -> np.ndarray:
    """Seconds of the business intervals inside each [lo, hi) (arrays or scalars)."""
    lo, hi = (
        np.atleast_1d(np.asarray(lo, dtype="datetime64[us]")),
        np.atleast_1d(np.asarray(hi, dtype="datetime64[us]")),
    )
    starts = intervals["start"].to_numpy(dtype="datetime64[us]")
    ends = intervals["end"].to_numpy(dtype="datetime64[us]")
    clipped = np.minimum(ends[None, :], hi[:, None]) - np.maximum(starts[None, :], lo[:, None])
    return np.clip(clipped.astype("timedelta64[us]").astype(np.int64), 0, None).sum(axis=1) / 1e6


def baseline_report(
    polls: pd.DataFrame, hours: pd.DataFrame, zones: pd.DataFrame, as_of: pd.Timestamp | None = None, store_ids=None
) -> pd.DataFrame:
    as_of = as_of if as_of is not None else polls["timestamp_utc"].max()
    store_ids = sorted(polls["store_id"].unique()) if store_ids is None else store_ids
    rows = []
    for store_id in store_ids:
        store_polls = polls[(polls["store_id"] == store_id) & (polls["timestamp_utc"] <= as_of)]
        if store_polls.empty:
            continue
        zone_rows = zones.loc[zones["store_id"] == store_id, "timezone_str"]
        zone = ZoneInfo(zone_rows.iloc[0] if len(zone_rows) else DEFAULT_TIMEZONE)
        first = min(store_polls["timestamp_utc"].min(), as_of - pd.Timedelta(days=7)) - pd.Timedelta(days=2)
        intervals = business_hours_utc(hours[hours["store_id"] == store_id], zone, first, as_of + pd.Timedelta(days=2))
        # Evidence: polls inside business hours; same-instant conflicts count as inactive.
        inside = (
            overlap_seconds(
                intervals, store_polls["timestamp_utc"], store_polls["timestamp_utc"] + pd.Timedelta(microseconds=1)
            )
            > 0
        )
        evidence = (
            store_polls[inside]
            .assign(active=lambda f: f["status"] == "active")
            .groupby("timestamp_utc")["active"]
            .all()
            .sort_index()
        )
        times = evidence.index.to_numpy(dtype="datetime64[us]")
        # Each evidence poll owns the instants nearer to it than to its neighbours.
        midpoints = times[:-1] + (times[1:] - times[:-1]) / 2
        cell_lo = np.concatenate([[FAR_PAST.to_datetime64()], midpoints]).astype("datetime64[us]")
        cell_hi = np.concatenate([midpoints, [FAR_FUTURE.to_datetime64()]]).astype("datetime64[us]")
        active = evidence.to_numpy()
        row = {"store_id": store_id}
        for name, (length, unit) in WINDOWS.items():
            lo = (as_of - length).to_datetime64()
            business = overlap_seconds(intervals, lo, as_of.to_datetime64())[0] / unit
            up = 0.0
            if active.any():
                up = (
                    overlap_seconds(
                        intervals, np.maximum(cell_lo[active], lo), np.minimum(cell_hi[active], as_of.to_datetime64())
                    ).sum()
                    / unit
                )
            row[f"uptime_{name}"] = round(up, 2)
            row[f"downtime_{name}"] = round(round(business, 2) - round(up, 2), 2)
        rows.append(row)
    columns = ["store_id", *(f"uptime_{w}" for w in WINDOWS), *(f"downtime_{w}" for w in WINDOWS)]
    return pd.DataFrame(rows, columns=columns)
