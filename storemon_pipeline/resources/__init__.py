"""The one resource: storemon's settings (home, sources, warehouse, reports), from the environment.

It is a plain object, not a ConfigurableResource: where storemon keeps its data is set by the
STOREMON_* variables of the processes that share it, so the launchpad offers no resource
config that a user could change for one run (and send one run's data elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from storemon_pipeline.core.settings import Settings, settings_from_env
from storemon_pipeline.core.warehouse import Warehouse, open_warehouse


@dataclass(frozen=True)
class Storemon:
    """Where storemon reads its sources and keeps its data. ``settings.warehouse`` is
    ``duckdb`` (the embedded file in the home) or a ``postgresql://`` URL."""

    settings: Settings

    def open_warehouse(self, context: dg.OpExecutionContext | None = None) -> Warehouse:
        progress = context.log.info if context is not None else (lambda message: None)
        return open_warehouse(self.settings, progress=progress)


StoremonResource = dg.ResourceParam[Storemon]


def step_store_io_manager(settings: Settings) -> dg.IOManagerDefinition:
    """Dagster's pickling I/O manager, in ``settings.step_store`` (a folder or URL beside the
    reports), so a step on one machine reads what a step on another wrote. Not configurable
    from the launchpad, like the rest of storemon's settings."""
    from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager

    return dg.IOManagerDefinition.hardcoded_io_manager(PickledObjectFilesystemIOManager(str(settings.step_store)))


def build_resources(settings: Settings | None = None) -> dict:
    settings = settings or settings_from_env()
    return {"storemon": Storemon(settings), "io_manager": step_store_io_manager(settings)}
