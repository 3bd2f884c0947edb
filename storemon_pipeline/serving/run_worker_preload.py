"""What storemon's code server preloads into its fork server: the definitions, resolved.

Every run worker forks from that process, so what is done here is done once, not per run:
importing Dagster and the definitions, and resolving the repository and its jobs.
"""

from storemon_pipeline.definitions import defs

repository = defs.get_repository_def()
for job in repository.get_all_jobs():
    job.get_job_snapshot()
