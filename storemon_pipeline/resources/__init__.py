"""Resources, chosen from the environment (STOREMON_HOME, STOREMON_SOURCE_DIR)."""


from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from storemon_pipeline.settings import StoremonPaths, paths_from_env
from storemon_pipeline.warehouse import configure


class StoremonDuckDBResource(DuckDBResource):
    """DuckDBResource that configures its sessions like ``warehouse.connect`` and also closes
    its connection when the step fails.

    (dagster-duckdb 0.29 closes it only on success; a failed step would keep the file, and
    its write lock, open until garbage collection.)
    """

    @contextmanager
    def get_connection(self) -> Iterator:
        with super().get_connection() as conn:
            try:
                yield configure(conn)
            finally:
                conn.close()


class StoremonHome(dg.ConfigurableResource):
    """Where storemon keeps its state (``home``) and reads its three source files (``source_dir``)."""

    home: str
    source_dir: str

    @property
    def paths(self) -> StoremonPaths:
        return StoremonPaths(home=Path(self.home), source_dir=Path(self.source_dir))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.paths.home.mkdir(parents=True, exist_ok=True)
        self.paths.reports_dir.mkdir(parents=True, exist_ok=True)


def build_resources(paths: StoremonPaths | None = None) -> dict[str, dg.ConfigurableResource]:
    paths = paths or paths_from_env()
    return {
        "duckdb": StoremonDuckDBResource(database=str(paths.database)),
        "storemon": StoremonHome(home=str(paths.home), source_dir=str(paths.source_dir)),
    }
