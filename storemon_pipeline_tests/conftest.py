"""Shared fixtures: a temporary storemon home, source files written from rows, and the public dataset."""

from __future__ import annotations

import gzip
from pathlib import Path

import dagster as dg
import pytest

from storemon_pipeline.assets.ingestion import ingestion_assets, ingestion_checks
from storemon_pipeline.resources import build_resources
from storemon_pipeline.settings import StoremonPaths

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "loop"
requires_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "business_hours.csv.gz").exists(),
    reason=f"the public dataset is not beside the repo ({SHARED_DATA}); only the developers' machines have it",
)

POLLS_HEADER = "store_id,status,timestamp_utc"
HOURS_HEADER = "store_id,dayOfWeek,start_time_local,end_time_local"
ZONES_HEADER = "store_id,timezone_str"


def write_text(path: Path, text: str, newline: str = "\n", bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", newline).encode("utf-8")
    if bom:
        data = b"\xef\xbb\xbf" + data
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def csv_text(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """A source folder with one small valid file of each kind."""
    folder = tmp_path / "sources"
    write_text(
        folder / "store_status.csv",
        csv_text(
            POLLS_HEADER,
            [
                "1,active,2023-01-24 09:06:42.605777 UTC",
                "1,inactive,2023-01-24 10:07:00.12 UTC",
                "2,active,2023-01-24 09:30:00 UTC",
            ],
        ),
    )
    write_text(folder / "business_hours.csv", csv_text(HOURS_HEADER, ["1,0,09:00:00,17:00:00", "1,1,09:00,17:00"]))
    write_text(folder / "timezones.csv", csv_text(ZONES_HEADER, ["1,America/New_York", "2,Asia/Kolkata"]))
    return folder


@pytest.fixture
def paths(tmp_path: Path, source_dir: Path) -> StoremonPaths:
    return StoremonPaths(home=tmp_path / "home", source_dir=source_dir)


def materialize_ingestion(
    paths: StoremonPaths, raise_on_error: bool = True, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ingestion_assets, *ingestion_checks],
        resources=build_resources(paths),
        raise_on_error=raise_on_error,
        instance=instance,
    )
