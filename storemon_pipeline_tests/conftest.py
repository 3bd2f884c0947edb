"""Shared fixtures: a temporary storemon home, source files written from rows, the public
dataset, and a real PostgreSQL server (pgserver) for the Postgres warehouse."""

from __future__ import annotations

import gzip
import signal
from pathlib import Path

import dagster as dg
import pytest

from storemon_pipeline.assets.ingestion import ingestion_assets, ingestion_checks
from storemon_pipeline.core.settings import Settings
from storemon_pipeline.core.warehouse import open_warehouse
from storemon_pipeline.resources import build_resources
from storemon_pipeline.serving.local_server import PostgresServer

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "loop"
requires_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "business_hours.csv.gz").exists(),
    reason=f"the public dataset is not beside the repo ({SHARED_DATA}); only the developers' machines have it",
)

POLLS_HEADER = "store_id,status,timestamp_utc"
HOURS_HEADER = "store_id,dayOfWeek,start_time_local,end_time_local"
ZONES_HEADER = "store_id,timezone_str"
MODES = ["duckdb", "postgres"]
# The assets a report run materializes, all together.
REPORT_ASSETS = {
    "localized_business_hours",
    "status_intervals",
    "store_report",
    "store_incidents",
    "store_daily_uptime",
    "store_report_extended",
}


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


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    previous = signal.getsignal(signal.SIGTERM)

    def stop_on_sigterm(signum, frame):  # pgserver only stops at interpreter exit otherwise
        server.stop()
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        yield server
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    return postgres_server.new_database()


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


def make_settings(home: Path, source_dir: Path, warehouse: str = "duckdb") -> Settings:
    return Settings(home=home, source_dir=source_dir, warehouse=warehouse)


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture
def settings(tmp_path: Path, source_dir: Path, mode: str, request) -> Settings:
    """A home in either warehouse: the embedded DuckDB file, or a fresh Postgres database."""
    warehouse = request.getfixturevalue("postgres_url") if mode == "postgres" else "duckdb"
    return make_settings(tmp_path / "home", source_dir, warehouse)


# The warehouse's polls beside their store ids (polls are stored under integer store keys).
POLLS_WITH_IDS = (
    "(SELECT k.store_id, p.* FROM {wh}.raw_store_polls p JOIN {wh}.store_keys k USING (store_key)) AS polls"
)


def table(settings: Settings, sql: str) -> list[tuple]:
    """Rows of a query on the warehouse; ``{wh}`` names its schema."""
    return [tuple(row) for row in open_warehouse(settings).query(sql)]


def materialize_ingestion(
    settings: Settings, raise_on_error: bool = True, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ingestion_assets, *ingestion_checks],
        resources=build_resources(settings),
        raise_on_error=raise_on_error,
        instance=instance,
    )


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    """The run's materialization of one asset (a multi-asset step materializes several)."""
    return next(
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key.to_user_string() == asset
    )
