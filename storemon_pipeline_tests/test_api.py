"""The REST API's own contract over real HTTP, with no Dagster behind it (its GraphQL port is
closed): documentation, JSON errors, the request body, and who may call it."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import uvicorn

from storemon_pipeline.serving.api import create_app
from storemon_pipeline.serving.local_server import HOST, free_port
from storemon_pipeline.serving.report_runs import ReportRuns
from storemon_pipeline_tests.conftest import make_settings


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("api")
    settings = make_settings(home / "home", home / "sources")
    dagster_port = free_port()  # nothing listens there
    app = create_app(ReportRuns(HOST, dagster_port, settings.reports_dir, timeout=5), settings)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://{HOST}:{server.config.port}", dagster_port
    server.should_exit = True
    thread.join(10)


def test_the_openapi_document_is_generated_from_every_route(api):
    url, _ = api
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    documented = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}
    assert documented == {
        ("/trigger_report", "POST"),
        ("/get_report", "GET"),
        ("/reports", "GET"),
        ("/stores/{store_id}", "GET"),
        ("/reports/latest", "GET"),
        ("/health", "GET"),
        ("/openapi.json", "GET"),
        ("/docs", "GET"),
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["summary"] and operation["responses"]


def test_the_docs_page_shows_every_path_and_needs_nothing_from_the_internet(api):
    url, _ = api
    page = requests.get(f"{url}/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path in ("/trigger_report", "/get_report", "/reports/latest", "/health"):
        assert f"{path}</code>" in page.text
    assert "<script" not in page.text and "<link" not in page.text and "https://" not in page.text


def test_every_error_is_json(api):
    url, _ = api
    unknown = requests.get(f"{url}/no/such/path", timeout=10)
    assert unknown.status_code == 404 and "no such path" in unknown.json()["error"]
    wrong_method = requests.get(f"{url}/trigger_report", timeout=10)
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["error"]
    missing = requests.get(f"{url}/get_report", timeout=10)
    assert missing.status_code == 400 and missing.json()["error"] == "report_id is required"


def test_the_trigger_body_is_checked_and_a_bad_as_of_says_why(api):
    url, dagster_port = api
    bad = requests.post(f"{url}/trigger_report", json={"as_of": "next tuesday"}, timeout=10)
    assert bad.status_code == 400 and "as_of 'next tuesday' is not a timestamp" in bad.json()["error"]
    assert requests.post(f"{url}/trigger_report", data="as_of=2023", timeout=10).status_code == 400
    assert requests.post(f"{url}/trigger_report", json={"asof": "2023-01-25"}, timeout=10).status_code == 400
    # A good body (or none, as curl -X POST sends) reaches Dagster, which is down here: one line, no query text.
    for body in ({"json": {"as_of": "2023-01-25 18:00:00"}}, {}):
        down = requests.post(f"{url}/trigger_report", timeout=30, **body)
        assert down.status_code == 503
        assert f"127.0.0.1:{dagster_port}" in down.json()["error"] and "\n" not in down.json()["error"]
        assert "mutation" not in down.json()["error"] and "query" not in down.json()["error"].lower()


def test_only_allowed_hosts_are_served_and_no_site_can_post_cross_site(api):
    url, _ = api
    rebinding = requests.get(f"{url}/health", headers={"Host": "attacker.example"}, timeout=10)
    assert rebinding.status_code == 400 and "Host" in rebinding.json()["error"]
    cross_site = requests.post(f"{url}/trigger_report", headers={"Origin": "https://attacker.example"}, timeout=10)
    assert cross_site.status_code == 403 and "cross-site" in cross_site.json()["error"]
    preflight = requests.options(
        f"{url}/trigger_report",
        headers={"Origin": "https://attacker.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code in (403, 405) and "access-control-allow-origin" not in preflight.headers
    same_site = requests.post(f"{url}/trigger_report", headers={"Origin": url}, timeout=30)
    assert same_site.status_code == 503  # allowed through; Dagster is down


def test_the_report_list_says_when_dagster_is_down(api):
    url, _ = api
    for path in ("/reports", "/reports/latest"):
        response = requests.get(f"{url}{path}", timeout=30, allow_redirects=False)
        assert response.status_code == 503 and "make run" in response.json()["error"]


def test_the_cli_says_in_one_line_that_dagster_is_down_and_what_to_do(api):
    import subprocess
    import sys
    from pathlib import Path

    _, dagster_port = api
    storemon = str(Path(sys.executable).parent / "storemon")
    for args in (["trigger-report"], ["get-report", "00000000-0000-4000-8000-000000000000"]):
        done = subprocess.run(
            [storemon, *args, "--port", str(dagster_port)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 5, done.stderr
        assert done.stderr.count("\n") == 1 and f"127.0.0.1:{dagster_port}" in done.stderr and "make run" in done.stderr
    # The variables are the defaults, and --help says so.
    env = {**__import__("os").environ, "STOREMON_DAGSTER_PORT": str(dagster_port)}
    done = subprocess.run([storemon, "trigger-report"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 5 and f"127.0.0.1:{dagster_port}" in done.stderr
    shown = subprocess.run([storemon, "trigger-report", "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert f"STOREMON_DAGSTER_PORT; now {dagster_port}" in " ".join(shown.stdout.split())
