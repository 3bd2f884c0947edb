from setuptools import find_packages, setup

setup(
    name="storemon_pipeline",
    version="0.1.0",
    description="Store uptime/downtime during business hours, as a Dagster code location",
    python_requires=">=3.11,<3.12",
    packages=find_packages(exclude=["storemon_pipeline_tests", "storemon_pipeline_tests.*"]),
    package_data={"storemon_pipeline": ["sql/*.sql", "dagster.yaml"]},
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-webserver>=1.13,<1.14",
        "dagster-graphql>=1.13,<1.14",
        "dagster-duckdb>=0.29,<0.30",
        "duckdb>=2.0,<3",
        "pandas>=3.0,<4",
        "pandera>=0.35,<0.36",
        "pyarrow>=20",
        "tzdata>=2025.1",
        # The REST API; both already come with dagster-webserver.
        "starlette",
        "uvicorn",
    ],
    extras_require={
        "test": ["pytest>=9,<10", "hypothesis>=6.100,<7"],
    },
    entry_points={"console_scripts": ["storemon=storemon_pipeline.cli:main"]},
)
