"""What storemon's code server preloads into its fork server: the definitions, resolved, and
the instance's classes.

Every run worker forks from that process, so what is done here is done once, not per run:
importing Dagster and the definitions, resolving the repository and its jobs, and importing
the classes the worker's instance is built from (its run, event and schedule storage,
launcher, coordinator, compute logs: SQLAlchemy, Alembic and the rest, most of a worker's
start otherwise). Only their modules: no storage is opened here, so no connection is
shared by the forks.
"""

import importlib
import os

from dagster._core.instance.ref import InstanceRef
from dagster._serdes.config_class import ConfigurableClassData

from storemon_pipeline.definitions import defs

repository = defs.get_repository_def()
for job in repository.get_all_jobs():
    job.get_job_snapshot()

if os.environ.get("DAGSTER_HOME"):
    instance_ref = InstanceRef.from_dir(os.environ["DAGSTER_HOME"])
    for part in instance_ref:
        if isinstance(part, ConfigurableClassData):
            getattr(importlib.import_module(part.module_name), part.class_name)
