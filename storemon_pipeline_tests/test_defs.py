import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from storemon_pipeline.definitions import defs
from storemon_pipeline_tests.conftest import REPORT_ASSETS

REPO = Path(__file__).resolve().parent.parent


def test_definitions_load():
    repository = defs.get_repository_def()
    assert {"ingest_job", "report_job"} <= {job.name for job in repository.get_all_jobs()}
    report_job = defs.resolve_job_def("report_job")
    assert {key.to_user_string() for key in report_job.asset_layer.executable_asset_keys} == REPORT_ASSETS
    sensor = defs.resolve_sensor_def("report_on_new_polls")
    assert sensor.job_name == "report_job"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    schedule = defs.resolve_schedule_def("hourly_ingest")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert {"raw_store_polls", "raw_business_hours", "raw_store_timezones"} <= keys


def test_only_the_writer_is_in_the_writer_pool():
    """Ingest runs go one at a time; report runs only read a snapshot and run concurrently."""
    pools = {node.key.to_user_string(): node.pools for node in defs.get_repository_def().asset_graph.asset_nodes}
    assert pools == {
        "raw_store_polls": {"warehouse_writer"},
        "raw_business_hours": {"warehouse_writer"},
        "raw_store_timezones": {"warehouse_writer"},
        **{name: set() for name in REPORT_ASSETS},
    }


def test_dagster_definitions_validate_passes():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Validation successful" in done.stderr + done.stdout


def imported_by(module: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after importing ``module``."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_core_never_imports_dagster():
    core = sorted(p.stem for p in (REPO / "storemon_pipeline" / "core").glob("*.py") if p.stem != "__init__")
    loaded = imported_by(", ".join(f"storemon_pipeline.core.{name}" for name in core))
    assert "dagster" not in loaded and "dagster_graphql" not in loaded


def test_serving_never_imports_the_cores_heavy_modules():
    for module in ("storemon_pipeline.serving.api", "storemon_pipeline.serving.report_runs"):
        assert not imported_by(module) & {"pandas", "pyarrow", "pandera", "duckdb", "numpy"}, module


def test_no_product_path_imports_pandas():
    """The run worker, the CLI and ingestion load no dataframe library (only the sample
    generator uses pandas): nothing pays for importing it."""
    for module in ("storemon_pipeline.definitions", "storemon_pipeline.serving.cli", "storemon_pipeline.core.ingest"):
        assert not imported_by(module) & {"pandas", "pyarrow", "pandera", "numpy"}, module


def test_what_the_ui_shows_renders_and_describes_the_report():
    repository = defs.get_repository_def()
    descriptions = [job.description for job in repository.get_all_jobs()]
    descriptions += [spec.description for spec in repository.asset_graph.asset_nodes if spec.description]
    descriptions += [
        check.description
        for check in repository.asset_graph.asset_check_keys
        and [repository.asset_graph.get_check_spec(key) for key in repository.asset_graph.asset_check_keys]
        if check.description
    ]
    # Markdown would swallow an <angle-bracket> placeholder as an HTML tag.
    assert descriptions and not [text for text in descriptions if re.search(r"<[a-z_ ]+>", text or "")]
    node = repository.asset_graph.get(dg.AssetKey("store_report"))
    schema = node.metadata["dagster/column_schema"]
    assert [column.name for column in schema.columns] == [
        "store_id",
        "uptime_last_hour",
        "uptime_last_day",
        "uptime_last_week",
        "downtime_last_hour",
        "downtime_last_day",
        "downtime_last_week",
    ]
    assert "minutes" in schema.columns[1].description and "hours" in schema.columns[2].description
    assert node.owners and node.tags.get("storemon/output") == "report"
    checks = {
        key.name for key in repository.asset_graph.asset_check_keys if key.asset_key == dg.AssetKey("store_report")
    }
    assert checks == {
        "uptime_plus_downtime_is_business_time",
        "one_row_per_polled_store",
        "no_negative_values",
        "values_within_their_window",
    }


def test_the_launchpad_offers_as_of_with_its_format_and_no_resource_config():
    schema = defs.resolve_job_def("report_job").run_config_schema.config_type
    fields = schema.fields
    # Where storemon keeps its data comes from the environment, not from a run's config: the
    # resource has no named fields (paths, warehouse URL) that a launchpad user could edit.
    storemon = fields["resources"].config_type.fields["storemon"]
    assert not getattr(storemon.config_type.fields["config"].config_type, "fields", None)
    assert storemon.default_value == {}
    as_of = fields["ops"].config_type.fields["report"].config_type.fields["config"].config_type.fields["as_of"]
    assert (
        "UTC" in as_of.description and "2023-03-13 06:30:00" in as_of.description and "newest poll" in as_of.description
    )
