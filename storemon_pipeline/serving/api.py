"""The REST API the product was specified with: trigger a report, then poll for it.

    POST /trigger_report [{"as_of": ...}]  -> 200 {"report_id": "<Dagster run id>"}; 400
    GET  /get_report?report_id=<id>       -> 200 {"status": "Running"} | the CSV (Complete)
                                             | {"status": "Failed", "error": ...}; 400; 404
    GET  /reports, GET /reports/latest, GET /health
    GET  /openapi.json (generated from the routes' docstrings), GET /docs (the same, as HTML)

It talks to Dagster only through GraphQL (report_runs.ReportRuns) and serves finished
reports from the reports folder, so it never opens the warehouse and never waits on its lock.
Every error is JSON ``{"error": ...}``, and names no server path, SQL or GraphQL text.

It answers only requests whose Host is an allowed host (STOREMON_ALLOWED_HOSTS; loopback by
default), and refuses a POST that a web page on another site sends (its Origin header).

    python -m storemon_pipeline.serving.api     # 127.0.0.1:$STOREMON_API_PORT (8000)
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator
from starlette.types import ASGIApp, Receive, Scope, Send

from storemon_pipeline.core.health import storage_problems
from storemon_pipeline.core.report_request import ReportError, parse_as_of, store_id_problem
from storemon_pipeline.core.settings import Settings, is_local, report_file_path, settings_from_env
from storemon_pipeline.serving.report_runs import (
    DagsterUnavailable,
    InvalidReportId,
    NoStoreDetail,
    ReportRuns,
    ReportState,
    UnknownReport,
    UnknownStore,
)

STATUS_HEADER = "X-Report-Status"
# /get_report?format=: the report CSV, or the extended one beside it.
REPORT_FORMATS = ("plain", "extended")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:])/(?:[^\s/:'\"]+/)+([^\s/:'\"]*)")
SCHEMAS = SchemaGenerator(
    {
        "openapi": "3.1.0",
        "info": {
            "title": "storemon",
            "version": "1",
            "description": "Store uptime and downtime within business hours. A report_id is the run id "
            "of the Dagster report_job run that computes the report. Every error is JSON: "
            '{"error": "..."}.',
        },
    }
)


def public(message: str) -> str:
    """An error for a client: server paths shortened to their file names."""
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "(a server folder)", message)


def _error(status_code: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": public(message), **extra}, status_code=status_code)


def create_app(report_runs: ReportRuns, settings: Settings | None = None) -> Starlette:
    settings = settings or settings_from_env()

    # Plain (sync) endpoints run in Starlette's thread pool, and the one async endpoint hands
    # its GraphQL call to it, so a slow call never blocks other requests.
    async def trigger_report(request: Request) -> Response:
        """
        summary: Start computing a report from every poll ingested so far
        requestBody:
          required: false
          description: Optional. `as_of` is the report's now, UTC (e.g. "2023-01-25 18:00:00"); default the newest poll.
          content:
            application/json:
              schema: {type: object, properties: {as_of: {type: string}}}
        responses:
          200:
            description: The report run was queued; poll /get_report with its id.
            content: {application/json: {schema: {type: object, properties: {report_id: {type: string, format: uuid}}}}}
          400: {description: "The body is not JSON, or as_of is not a timestamp", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          403: {description: "Sent by a web page of another site (Origin)", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          503: {description: "Dagster is not reachable", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        """
        body = await request.body()
        as_of = None
        if body.strip():
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return _error(400, 'the body must be JSON, e.g. {"as_of": "2023-01-25 18:00:00"}, or empty')
            if not isinstance(payload, dict) or set(payload) - {"as_of"}:
                return _error(400, 'the body takes one optional field: {"as_of": "2023-01-25 18:00:00"}')
            as_of = payload.get("as_of")
            if as_of is not None and not isinstance(as_of, str):
                return _error(400, "as_of must be a string, e.g. 2023-01-25 18:00:00")
            try:
                parse_as_of(as_of)
            except ReportError as error:
                return _error(400, str(error))
        try:
            report_id = await run_in_threadpool(report_runs.trigger, as_of=as_of, trigger="rest")
            return JSONResponse({"report_id": report_id})
        except DagsterUnavailable as error:
            return _error(503, str(error))

    def get_report(request: Request) -> Response:
        """
        summary: Poll a report; Running, the CSV when Complete, or Failed with the error
        parameters:
          - {name: report_id, in: query, required: true, schema: {type: string, format: uuid}}
          - {name: format, in: query, required: false, schema: {type: string, enum: [plain, extended], default: plain}}
        responses:
          200:
            description: >
              Running or Failed (JSON), or Complete: the CSV as an attachment, columns store_id,
              uptime_last_hour (minutes), uptime_last_day (hours), uptime_last_week (hours),
              downtime_last_hour (minutes), downtime_last_day (hours), downtime_last_week (hours).
              With format=extended, those columns and per window (hour, day, week)
              uptime_last_<w>_lo and _hi (a 90 % interval for the true uptime), polls_last_<w> and
              unobserved_last_<w> (docs/report.md). The X-Report-Status header always carries the state.
            headers: {X-Report-Status: {schema: {type: string, enum: [Running, Complete, Failed]}}}
            content:
              text/csv: {schema: {type: string}}
              application/json: {schema: {$ref: "#/components/schemas/ReportState"}}
          400: {description: "report_id missing or not a run id, or an unknown format", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          404: {description: "No report run has this id", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          503: {description: "Dagster is not reachable", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        """
        report_id = request.query_params.get("report_id")
        report_format = request.query_params.get("format", "plain")
        if report_format not in REPORT_FORMATS:
            return _error(400, f"format {report_format[:20]!r} is not one of {', '.join(REPORT_FORMATS)}")
        try:
            run = report_runs.lookup(report_id)
        except InvalidReportId as error:
            return _error(400, str(error))
        except UnknownReport as error:
            return _error(404, str(error), report_id=report_id)
        except DagsterUnavailable as error:
            return _error(503, str(error))
        if run.state is ReportState.COMPLETE:
            headers = {STATUS_HEADER: ReportState.COMPLETE.value}
            path, filename = run.path, f"report-{run.report_id}.csv"
            if report_format == "extended":
                path = report_file_path(report_runs.reports_dir, run.report_id, "extended")
                filename = f"report-{run.report_id}.extended.csv"
                if not path.exists():
                    return _error(404, f"report {run.report_id} has no extended file (an older version made it)")
            if is_local(path):
                return FileResponse(path, media_type="text/csv", filename=filename, headers=headers)
            # A reports store at a URL: read through fsspec.
            headers["content-disposition"] = f'attachment; filename="{filename}"'
            return Response(path.read_bytes(), media_type="text/csv", headers=headers)
        body = {"report_id": run.report_id, "status": run.state.value, "run_status": run.run_status}
        if run.state is ReportState.FAILED:
            body["error"] = public(run.error or "")
        return JSONResponse(body, headers={STATUS_HEADER: run.state.value})

    def store(request: Request) -> Response:
        """
        summary: One store of a complete report, with its intervals, daily breakdown and incidents
        parameters:
          - {name: store_id, in: path, required: true, schema: {type: string}}
          - {name: report_id, in: query, required: true, schema: {type: string, format: uuid}}
        responses:
          200:
            description: >
              report_id, store_id, as_of; report (the store's row of the report CSV, numbers);
              daily (its last 7 local dates: local_date, business_hours, uptime, downtime);
              incidents (its outages in the last week, columns as in the incidents CSV);
              intervals (per window hour, day, week: uptime_lo and uptime_hi, a 90 % interval for
              its true uptime; polls; unobserved business time; as in the extended CSV).
            content: {application/json: {schema: {type: object}}}
          400: {description: "report_id or store_id is malformed", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          404: {description: "No report run has this id, the store is not in it, or an older version made the report without per-store files", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          409: {description: "The report is Running or Failed (its status in the body)", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          503: {description: "Dagster is not reachable", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        """
        store_id = request.path_params["store_id"]
        problem = store_id_problem(store_id)
        if problem:
            return _error(400, f"store_id {store_id[:50]!r} {problem}")
        report_id = request.query_params.get("report_id")
        try:
            run = report_runs.lookup(report_id)
            if run.state is not ReportState.COMPLETE:
                return _error(409, f"report {run.report_id} is {run.state.value}", status=run.state.value)
            return JSONResponse(report_runs.store(run, store_id))
        except InvalidReportId as error:
            return _error(400, str(error))
        except (UnknownReport, UnknownStore, NoStoreDetail) as error:
            return _error(404, str(error), report_id=report_id)
        except DagsterUnavailable as error:
            return _error(503, str(error))

    def reports(request: Request) -> Response:
        """
        summary: The newest report runs first (up to 50), finished and running
        responses:
          200:
            description: report_id, status (Running, Complete, Failed), as_of and row_count (Complete), created (UTC)
            content: {application/json: {schema: {type: object, properties: {reports: {type: array, items: {$ref: "#/components/schemas/ReportListing"}}}}}}
          503: {description: "Dagster is not reachable", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        """
        try:
            return JSONResponse({"reports": report_runs.recent()})
        except DagsterUnavailable as error:
            return _error(503, str(error))

    def latest_report(request: Request) -> Response:
        """
        summary: Redirect to the newest complete report (its /get_report URL)
        responses:
          307: {description: "Location is /get_report?report_id=<the newest complete report>"}
          404: {description: "No report is complete yet", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          503: {description: "Dagster is not reachable", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        """
        try:
            listed = report_runs.recent()
        except DagsterUnavailable as error:
            return _error(503, str(error))
        complete = [entry for entry in listed if entry["status"] == ReportState.COMPLETE.value]
        if not complete:
            return _error(404, "no report is complete yet; POST /trigger_report starts one")
        return RedirectResponse(f"/get_report?report_id={complete[0]['report_id']}", status_code=307)

    def health(request: Request) -> Response:
        """
        summary: ok only if Dagster answers and the warehouse and the reports folder can be written
        responses:
          200: {description: "status ok", content: {application/json: {schema: {$ref: "#/components/schemas/Health"}}}}
          503: {description: "status degraded, with what is wrong", content: {application/json: {schema: {$ref: "#/components/schemas/Health"}}}}
        """
        body = {"status": "ok", "dagster": report_runs.url, "storage": "ok"}
        try:
            report_runs.ping()
        except DagsterUnavailable as error:
            body.update(status="degraded", dagster=str(error))
        problems = storage_problems(settings)
        if problems:
            body.update(status="degraded", storage="; ".join(problems))
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    def openapi(request: Request) -> Response:
        """
        summary: This API's OpenAPI document
        responses:
          200: {description: "OpenAPI 3.1", content: {application/json: {schema: {type: object}}}}
        """
        return JSONResponse(openapi_document(request.app))

    def docs(request: Request) -> Response:
        """
        summary: This API's documentation as a page (the OpenAPI document rendered; works offline)
        responses:
          200: {description: "HTML", content: {text/html: {schema: {type: string}}}}
        """
        return HTMLResponse(render_docs(openapi_document(request.app)))

    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 404:
            return _error(404, f"no such path: {request.url.path} (see /docs)")
        if error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "")
            return _error(405, f"{request.method} is not allowed on {request.url.path}; allowed: {allowed} (see /docs)")
        return _error(error.status_code, str(error.detail))

    async def server_error(request: Request, error: Exception) -> Response:
        return _error(500, "internal error; the API's log has the details")

    app = Starlette(
        routes=[
            Route("/trigger_report", trigger_report, methods=["POST"]),
            Route("/get_report", get_report, methods=["GET"]),
            Route("/reports", reports, methods=["GET"]),
            Route("/stores/{store_id:path}", store, methods=["GET"]),
            Route("/reports/latest", latest_report, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.add_middleware(HostAndOriginGuard, allowed_hosts=settings.allowed_hosts)
    return app


_COMPONENTS = {
    "schemas": {
        "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
        "ReportState": {
            "type": "object",
            "properties": {
                "report_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "enum": ["Running", "Failed"]},
                "run_status": {"type": "string", "description": "The Dagster run status"},
                "error": {"type": "string"},
            },
            "required": ["report_id", "status"],
        },
        "ReportListing": {
            "type": "object",
            "properties": {
                "report_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "enum": ["Running", "Complete", "Failed"]},
                "run_status": {"type": "string"},
                "as_of": {"type": ["string", "null"]},
                "row_count": {"type": ["integer", "null"]},
                "created": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "dagster": {"type": "string"},
                "storage": {"type": "string"},
            },
        },
    }
}


def openapi_document(app: Starlette) -> dict:
    """Generated from the routes: each endpoint's docstring below its first line is its
    OpenAPI operation (YAML)."""
    return {**SCHEMAS.get_schema(routes=app.routes), "components": _COMPONENTS}


def render_docs(document: dict) -> str:
    """The OpenAPI document as one self-contained HTML page (no script, no CDN)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>storemon API</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code,pre{background:#f4f4f4;padding:.1rem .3rem}h2{margin-top:2rem;border-top:1px solid #ccc;padding-top:1rem}"
        "td,th{text-align:left;padding:.2rem .6rem;vertical-align:top}</style></head><body>",
        f"<h1>{html.escape(document['info']['title'])} API</h1><p>{html.escape(document['info'].get('description', ''))}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>",
    ]
    for path, operations in sorted(document.get("paths", {}).items()):
        for method, operation in operations.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            parts.append(f"<p>{html.escape(operation.get('summary', ''))}</p>")
            for parameter in operation.get("parameters", []):
                parts.append(
                    f"<p>Parameter <code>{html.escape(parameter['name'])}</code> in {parameter['in']}"
                    f"{' (required)' if parameter.get('required') else ''}</p>"
                )
            if "requestBody" in operation:
                parts.append(f"<p>Body: {html.escape(operation['requestBody'].get('description', ''))}</p>")
            rows = "".join(
                f"<tr><td><code>{code}</code></td><td>{html.escape(str(response.get('description', '')))}</td></tr>"
                for code, response in operation.get("responses", {}).items()
            )
            parts.append(f"<table><tr><th>status</th><th>meaning</th></tr>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts)


class HostAndOriginGuard:
    """Like Starlette's TrustedHostMiddleware (an unknown Host gets 400), but with the API's
    JSON errors; and a POST whose Origin names a site that is not an allowed host is
    refused (403), so a web page cannot trigger reports cross-site. curl sends no Origin."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...]):
        self.app, self.allowed_hosts = app, {host.lower().strip("[]") for host in allowed_hosts}

    def _allowed(self, host: str | None) -> bool:
        return "*" in self.allowed_hosts or (host or "").lower().strip("[]") in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        host = urlsplit("//" + headers.get("host", "")).hostname
        if not self._allowed(host):
            await _error(400, "the Host header names a host this API does not serve (STOREMON_ALLOWED_HOSTS)")(
                scope, receive, send
            )
            return
        origin = headers.get("origin")
        if (
            scope["method"] not in ("GET", "HEAD")
            and origin is not None
            and not self._allowed(urlsplit(origin).hostname)
        ):
            await _error(
                403,
                "cross-site requests are refused: this API takes POSTs from its own hosts and from clients such as curl",
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)


def main() -> None:
    import uvicorn

    settings = settings_from_env()
    report_runs = ReportRuns(settings.host, settings.dagster_port, settings.reports_dir)
    uvicorn.run(create_app(report_runs, settings), host=settings.host, port=settings.api_port, log_level="info")


if __name__ == "__main__":
    main()
