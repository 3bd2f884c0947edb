from setuptools import find_packages, setup

setup(
    name="storemon_pipeline",
    version="0.1.0",
    description="Store uptime/downtime during business hours, as a Dagster code location",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["storemon_pipeline", "storemon_pipeline.*"]),
    package_data={"storemon_pipeline": ["core/sql/*.sql", "dagster.yaml"]},
    install_requires=[
        # Dagster's libraries are released in step (1.13.N with 0.29.N): pinned together.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-graphql==1.13.27",
        # Production mode: the Dagster instance in Postgres; brings psycopg2, which the
        # Postgres warehouse uses too.
        "dagster-postgres==0.29.27",
        # The report's shard steps on a Dask cluster (--executor dask; README: Scale-out).
        "dagster-dask==0.29.27",
        "duckdb>=2.0,<3",
        # The sample generator only (ingestion validates in DuckDB).
        "pandas>=3.0,<4",
        # The sample generator's arrays, and the Postgres snapshot's polls read from binary COPY
        # (pandas brings it already; named because storemon imports it itself).
        "numpy>=2,<3",
        "tzdata>=2025.1",
        # The REST API; both already come with dagster-webserver.
        "starlette",
        "uvicorn",
        # The REST API's OpenAPI document is generated from its routes' YAML docstrings.
        "PyYAML",
    ],
    extras_require={
        # Production on Kubernetes: the k8s_job_executor runs each shard step as a pod.
        "k8s": ["dagster-k8s==0.29.27"],
        # Reports in S3 (STOREMON_REPORTS_DIR=s3://bucket/prefix), through fsspec.
        "s3": ["s3fs"],
        # pgserver: a real PostgreSQL server from pip, for the Postgres-mode tests.
        "test": [
            "pytest>=9,<10",
            "hypothesis>=6.100,<7",
            "requests>=2.31",
            "pgserver==0.1.4",
            "ruff==0.17.6",
            # The k8s extra, so the documented Kubernetes run config is checked.
            "dagster-k8s==0.29.27",
        ],
    },
    entry_points={"console_scripts": ["storemon=storemon_pipeline.serving.cli:main"]},
)
