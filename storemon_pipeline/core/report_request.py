"""What a report request may say: its as_of, its snapshot and a store id, checked before any run starts.

Light on purpose (no DuckDB): the REST API and the CLI check requests with it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone


class ReportError(Exception):
    pass


# The store-id rules, here for the REST API and as SQL for ingestion (validation.STORE_ID_RULES).
STORE_ID_MAX_CHARACTERS = 200
FORMULA_STARTS = ("=", "+", "-", "@")  # a spreadsheet would run such an id as a formula
CONTROL_CHARACTER = "[\\x00-\\x1f\\x7f]"  # a regular expression, alike in Python and DuckDB
STORE_ID_PROBLEMS = {
    "empty": "is empty",
    "long": f"is longer than {STORE_ID_MAX_CHARACTERS} characters",
    "formula": "starts with =, +, - or @ (a formula in a spreadsheet)",
    "control": "holds a control character",
}


def store_id_problem(store_id: str) -> str | None:
    """Why ingestion would reject this store id (None: it would not)."""
    if store_id == "":
        return STORE_ID_PROBLEMS["empty"]
    if len(store_id) > STORE_ID_MAX_CHARACTERS:
        return STORE_ID_PROBLEMS["long"]
    if store_id.startswith(FORMULA_STARTS):
        return STORE_ID_PROBLEMS["formula"]
    if re.search(CONTROL_CHARACTER, store_id):
        return STORE_ID_PROBLEMS["control"]
    return None


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
