"""The one resource: storemon's settings (home, sources, warehouse, reports), from the environment."""

from pathlib import Path

import dagster as dg

from storemon_pipeline.core.settings import Settings, settings_from_env
from storemon_pipeline.core.warehouse import Warehouse, open_warehouse


class StoremonResource(dg.ConfigurableResource):
    """Where storemon reads its sources and keeps its data, as set by STOREMON_* variables.

    ``warehouse`` is ``duckdb`` (the embedded file in ``home``) or a ``postgresql://`` URL.
    """

    home: str
    source_dir: str
    warehouse: str
    reports_dir: str

    @property
    def settings(self) -> Settings:
        base = settings_from_env()
        return base.replace(
            home=Path(self.home),
            source_dir=Path(self.source_dir),
            warehouse=self.warehouse,
            reports_dir_override=Path(self.reports_dir),
        )

    def open_warehouse(self, context: dg.OpExecutionContext | None = None) -> Warehouse:
        progress = context.log.info if context is not None else (lambda message: None)
        return open_warehouse(self.settings, progress=progress)


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or settings_from_env()
    return {
        "storemon": StoremonResource(
            home=str(settings.home),
            source_dir=str(settings.source_dir),
            warehouse=settings.warehouse,
            reports_dir=str(settings.reports_dir),
        )
    }
