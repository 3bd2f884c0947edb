"""An independent statement of the report's semantics in plain Python (zoneinfo, no SQL).

It follows docs/report.md literally: business hours are built per local date and converted
with zoneinfo (fold=0), every business instant takes the status of the nearest in-hours poll,
and the windows slide back from as_of. Slow, obvious, and only for tests.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(hours=24), "week": timedelta(hours=168)}
FAR = timedelta(days=3650)


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone, fold=0).astimezone(timezone.utc).replace(tzinfo=None)


def business_intervals(
    rows: list[tuple[int, time, time]], zone: ZoneInfo, first: date, last: date
) -> list[tuple[datetime, datetime]]:
    if not rows:
        return [(datetime.min + FAR, datetime.max - FAR)]  # open 24x7
    intervals = []
    day = first
    while day <= last:
        for weekday, start, end in rows:
            if day.weekday() != weekday:
                continue
            if start == end:
                local_start, local_end = (
                    datetime.combine(day, time()),
                    datetime.combine(day + timedelta(days=1), time()),
                )
            elif end == time(23, 59, 59):
                local_start, local_end = datetime.combine(day, start), datetime.combine(day + timedelta(days=1), time())
            elif end < start:
                local_start, local_end = datetime.combine(day, start), datetime.combine(day + timedelta(days=1), end)
            else:
                local_start, local_end = datetime.combine(day, start), datetime.combine(day, end)
            utc_start, utc_end = to_utc(local_start, zone), to_utc(local_end, zone)
            if utc_end > utc_start:
                intervals.append((utc_start, utc_end))
        day += timedelta(days=1)
    return merge(intervals)


def merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[list[datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def measure(intervals, lo: datetime, hi: datetime) -> float:
    return sum(max(0.0, (min(e, hi) - max(s, lo)).total_seconds()) for s, e in intervals)


def nearest_poll_up_seconds(evidence: list[tuple[datetime, str]], intervals, lo: datetime, hi: datetime) -> float:
    """Business seconds in [lo, hi) whose nearest evidence poll (sorted (time, status)) is active."""
    up_seconds = 0.0
    for i, (t, status) in enumerate(evidence):
        if status != "active":
            continue
        # The set of instants whose nearest evidence poll is this one.
        cell_lo = evidence[i - 1][0] + (t - evidence[i - 1][0]) / 2 if i > 0 else datetime.min + FAR
        cell_hi = t + (evidence[i + 1][0] - t) / 2 if i + 1 < len(evidence) else datetime.max - FAR
        up_seconds += measure(intervals, max(lo, cell_lo), min(hi, cell_hi))
    return up_seconds


def store_evidence(
    polls: list[tuple[str, datetime, str]],
    hours: list[tuple[str, int, time, time]],
    zones: dict[str, str],
    as_of: datetime,
):
    """Per polled store: (store_id, its business intervals, its evidence: the in-hours polls at
    or before as_of as sorted (time, status), inactive where two share an instant)."""
    rows_by_store: dict[str, list] = defaultdict(list)
    for store, weekday, start, end in hours:
        rows_by_store[store].append((weekday, start, end))
    polls_by_store: dict[str, list] = defaultdict(list)
    for store, t, status in polls:
        if t <= as_of:
            polls_by_store[store].append((t, status))
    for store, store_polls in polls_by_store.items():
        zone = ZoneInfo(zones.get(store, "America/Chicago"))
        first = min(min(t for t, _ in store_polls), as_of - WINDOWS["week"]).date() - timedelta(days=2)
        intervals = business_intervals(rows_by_store[store], zone, first, as_of.date() + timedelta(days=2))
        statuses: dict[datetime, str] = {}
        for t, status in store_polls:
            if any(s <= t < e for s, e in intervals):
                statuses[t] = "inactive" if statuses.get(t) == "inactive" else status
        yield store, intervals, sorted(statuses.items())


def oracle_report(
    polls: list[tuple[str, datetime, str]],
    hours: list[tuple[str, int, time, time]],
    zones: dict[str, str],
    as_of: datetime | None = None,
) -> dict[str, dict[str, float]]:
    """store_id -> {uptime_hour, downtime_hour (minutes), uptime_day, ..., downtime_week (hours)}, unrounded."""
    as_of = as_of or max(t for _, t, _ in polls)
    report = {}
    for store, intervals, evidence in store_evidence(polls, hours, zones, as_of):
        row = {}
        for name, length in WINDOWS.items():
            lo = as_of - length
            open_seconds = measure(intervals, lo, as_of)
            up_seconds = nearest_poll_up_seconds(evidence, intervals, lo, as_of)
            unit = 60 if name == "hour" else 3600
            row[f"uptime_{name}"] = up_seconds / unit
            row[f"downtime_{name}"] = (open_seconds - up_seconds) / unit
        report[store] = row
    return report


def oracle_evidence(
    polls: list[tuple[str, datetime, str]],
    hours: list[tuple[str, int, time, time]],
    zones: dict[str, str],
    as_of: datetime | None = None,
) -> dict[str, dict[str, float]]:
    """store_id -> {evidence: its in-hours polls at or before as_of; polls_<w>: those in
    [as_of - w, as_of]; unobserved_<w>: business
    time in [as_of - w, as_of) further than 30 minutes from every in-hours poll (minutes for
    the hour, hours otherwise), business_<w> likewise}, unrounded (docs/report.md)."""
    as_of = as_of or max(t for _, t, _ in polls)
    near = timedelta(minutes=30)
    found = {}
    for store, intervals, evidence in store_evidence(polls, hours, zones, as_of):
        observed = merge([(t - near, t + near) for t, _ in evidence])
        row = {"evidence": len(evidence)}
        for name, length in WINDOWS.items():
            lo, unit = as_of - length, (60 if name == "hour" else 3600)
            business = measure(intervals, lo, as_of)
            seen = sum(measure(intervals, max(lo, s), min(as_of, e)) for s, e in observed if e > lo and s < as_of)
            row[f"polls_{name}"] = sum(1 for t, _ in evidence if lo <= t <= as_of)
            row[f"unobserved_{name}"] = (business - seen) / unit
            row[f"business_{name}"] = business / unit
        found[store] = row
    return found
