"""What a report request may say: its as_of and its snapshot, checked before any run starts.

Light on purpose (no DuckDB): the REST API and the CLI check requests with it.
"""

from __future__ import annotations

from datetime import datetime, timezone


class ReportError(Exception):
    pass


def parse_as_of(text: str | None) -> datetime | None:
    """An explicit as_of: any ISO 8601 form or the dataset's '... UTC' form; naive means UTC."""
    if text is None or not str(text).strip():
        return None
    value = str(text).strip().removesuffix(" UTC").removesuffix("Z")
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise ReportError(f"as_of {text!r} is not a timestamp (e.g. 2023-01-25 18:00:00 UTC)") from None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
    return stamp


def parse_snapshot(value) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        load_id = int(str(value).strip())
    except ValueError:
        raise ReportError(f"snapshot {value!r} is not a load id (a positive integer)") from None
    if load_id < 1:
        raise ReportError(f"snapshot {value!r} is not a load id (a positive integer)")
    return load_id
