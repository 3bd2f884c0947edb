"""The REST API the product was specified with: trigger a report, then poll for it.

    POST /trigger_report                  -> 200 {"report_id": "<Dagster run id>"}
    GET  /get_report?report_id=<id>       -> 200 {"status": "Running"} | the CSV (Complete)
                                             | {"status": "Failed", "error": ...}; 400; 404
    GET  /health, GET /openapi.json

It talks to Dagster only through GraphQL (report_runs.ReportRuns) and serves finished
reports from the reports folder, so it never opens the warehouse and never waits on its lock.

    python -m storemon_pipeline.serving.api     # 127.0.0.1:$STOREMON_API_PORT (8000)
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from storemon_pipeline.core.health import storage_problems
from storemon_pipeline.core.settings import Settings, settings_from_env
from storemon_pipeline.serving.report_runs import (
    DagsterUnavailable,
    InvalidReportId,
    ReportRuns,
    ReportState,
    UnknownReport,
)

STATUS_HEADER = "X-Report-Status"


def _error(status_code: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status_code)


def create_app(report_runs: ReportRuns, settings: Settings | None = None) -> Starlette:
    # Plain (sync) endpoints: Starlette runs them in its thread pool, so a slow GraphQL call
    # never blocks other requests.
    def trigger_report(request: Request) -> Response:
        try:
            return JSONResponse({"report_id": report_runs.trigger(trigger="rest")})
        except DagsterUnavailable as error:
            return _error(503, str(error))

    def get_report(request: Request) -> Response:
        report_id = request.query_params.get("report_id")
        try:
            run = report_runs.lookup(report_id)
        except InvalidReportId as error:
            return _error(400, str(error))
        except UnknownReport as error:
            return _error(404, str(error), report_id=report_id)
        except DagsterUnavailable as error:
            return _error(503, str(error))
        if run.state is ReportState.COMPLETE:
            return FileResponse(
                run.path,
                media_type="text/csv",
                filename=f"report-{run.report_id}.csv",
                headers={STATUS_HEADER: ReportState.COMPLETE.value},
            )
        body = {"report_id": run.report_id, "status": run.state.value, "run_status": run.run_status}
        if run.state is ReportState.FAILED:
            body["error"] = run.error
        return JSONResponse(body, headers={STATUS_HEADER: run.state.value})

    def health(request: Request) -> Response:
        """ok only if Dagster answers and the warehouse and the reports folder can be written."""
        body = {"status": "ok", "dagster": report_runs.url, "storage": "ok"}
        try:
            report_runs.ping()
        except DagsterUnavailable as error:
            body.update(status="degraded", dagster=str(error))
        problems = storage_problems(settings) if settings is not None else []
        if problems:
            body.update(status="degraded", storage="; ".join(problems))
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    return Starlette(
        routes=[
            Route("/trigger_report", trigger_report, methods=["POST"]),
            Route("/get_report", get_report, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ]
    )


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ID = {"type": "string", "format": "uuid", "description": "The Dagster run id of the report_job run"}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "storemon",
        "version": "1",
        "description": "Store uptime and downtime within business hours. A report_id is the run id of the "
        "Dagster report_job run that computes the report.",
    },
    "paths": {
        "/trigger_report": {
            "post": {
                "summary": "Start computing a report from every poll ingested so far",
                "responses": {
                    "200": {
                        "description": "The report run was queued",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": {"report_id": _ID}, "required": ["report_id"]}
                            }
                        },
                    },
                    "503": {"description": "Dagster is not reachable", "content": {"application/json": {"schema": _ERROR}}},
                },
            }
        },
        "/get_report": {
            "get": {
                "summary": "Poll a report: Running, the CSV when Complete, or Failed with the error",
                "parameters": [{"name": "report_id", "in": "query", "required": True, "schema": _ID}],
                "responses": {
                    "200": {
                        "description": "Running or Failed (JSON), or Complete: the CSV as an attachment. "
                        "The X-Report-Status header always carries the state.",
                        "headers": {
                            STATUS_HEADER: {"schema": {"type": "string", "enum": [state.value for state in ReportState]}}
                        },
                        "content": {
                            "text/csv": {
                                "schema": {
                                    "type": "string",
                                    "description": "store_id, uptime_last_hour (minutes), uptime_last_day (hours), "
                                    "uptime_last_week (hours), downtime_last_hour (minutes), "
                                    "downtime_last_day (hours), downtime_last_week (hours)",
                                }
                            },
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "report_id": _ID,
                                        "status": {"type": "string", "enum": ["Running", "Failed"]},
                                        "run_status": {"type": "string", "description": "The Dagster run status"},
                                        "error": {"type": "string"},
                                    },
                                    "required": ["report_id", "status"],
                                }
                            },
                        },
                    },
                    "400": {"description": "report_id missing or not a run id", "content": {"application/json": {"schema": _ERROR}}},
                    "404": {"description": "No report run has this id", "content": {"application/json": {"schema": _ERROR}}},
                    "503": {"description": "Dagster is not reachable", "content": {"application/json": {"schema": _ERROR}}},
                },
            }
        },
    },
}


def main() -> None:
    import uvicorn

    settings = settings_from_env()
    report_runs = ReportRuns(settings.host, settings.dagster_port, settings.reports_dir)
    uvicorn.run(create_app(report_runs, settings), host=settings.host, port=settings.api_port, log_level="info")


if __name__ == "__main__":
    main()
