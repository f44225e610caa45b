"""The dashboard's web application: server-rendered pages, their figures as JSON, live alerts.

Pages (HTML, Thai with English beside it):
    /                       national overview: headline figures, the 77-province grid, alerts
    /provinces              every province in a table, sortable and filterable
    /provinces/{code}       one province: quota over time, availability, worst cameras, projects
    /projects               the project pipeline by destination, late ones first
    /alerts                 the live alerts feed alone
Each page fetches its figures again every `dashboard.refresh_seconds` from the JSON twin of
its path under /api (`/api/overview` for /), which carries the raw figures, their display
text and the page's re-rendered fragments; /events/alerts streams new alerts (server-sent
events). /snapshots/{camera_id} serves the prober's latest snapshot of a camera.
Everything the pages load ships in static/ (uPlot, the Sarabun font): no CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from cctv import figures
from cctv.exceptions import InputError, StorageError
from cctv.provinces import Provinces
from services.dashboard import present
from services.dashboard.feed import AlertFeed
from services.dashboard.source import FigureSource
from services.prober.snapshots import snapshot_name

HERE = Path(__file__).resolve().parent
log = logging.getLogger("cctv.dashboard")

NAV = (
    ("/", "overview", "ภาพรวมประเทศ", "National overview"),
    ("/provinces", "provinces", "รายจังหวัด", "Provinces"),
    ("/projects", "projects", "โครงการ", "Project pipeline"),
    ("/alerts", "alerts", "การแจ้งเตือน", "Alerts"),
)


def create_app(source: FigureSource, *, feed: AlertFeed | None = None) -> FastAPI:
    settings = source.settings
    cfg = settings.dashboard
    provinces = Provinces.load(settings.provinces_file)
    snapshots_dir = Path(settings.prober.snapshots_dir)
    feed = feed or AlertFeed(source, poll_seconds=cfg.alerts_poll_seconds, keep=cfg.alerts_shown)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        poller = asyncio.create_task(feed.run(), name="alerts-feed")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            source.close()

    app = FastAPI(
        title="CCTV national monitoring room",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.globals.update(
        nav=NAV,
        refresh_seconds=cfg.refresh_seconds,
        STATUS=present.STATUS,
        STATUS_MARK=present.STATUS_MARK,
        BODY=present.BODY,
        STAGE=present.STAGE,
        ALERT=present.ALERT,
        SEVERITY=present.SEVERITY,
        FAULT=present.FAULT,
        KIND=present.KIND,
        BODIES=figures.BODIES,
        STATUSES=figures.STATUSES,
        OPEN_ALERTS=figures.OPEN_ALERTS,
    )
    env.filters.update(
        number=present.number,
        pct=present.pct,
        baht=present.baht,
        be=present.be,
        be_date=present.be_date,
        iso=present.iso,
        label=present.label,
    )

    def fragment(name: str, **context: Any) -> str:
        return env.get_template(f"fragments/{name}.html").render(**context)

    def has_snapshot(camera_id: str) -> bool:
        return (snapshots_dir / snapshot_name(camera_id)).is_file()

    # -- each page's data: the same for its HTML and its JSON ---------------------------------

    def overview_data() -> dict[str, Any]:
        o = source.overview()
        return {
            "figures": present.raw(o),
            "text": present.overview_text(o),
            "fragments": {"province-grid": fragment("grid", provinces=o.provinces)},
            "_o": o,
        }

    def provinces_data() -> dict[str, Any]:
        as_of, rows = source.provinces()
        return {
            "figures": present.raw({"as_of": as_of, "provinces": rows}),
            "text": {"as_of": present.be(as_of)},
            "fragments": {"province-rows": fragment("province_rows", provinces=rows)},
            "_rows": rows,
        }

    def province_data(code: str) -> dict[str, Any]:
        detail = source.province(code)
        snapshots = {c.camera_id: has_snapshot(c.camera_id) for c in detail.worst_cameras}
        return {
            "figures": present.raw(detail),
            "text": {"as_of": present.be(detail.as_of), **present.province_text(detail.province)},
            "charts": {
                "quota": present.quota_chart(detail),
                "availability": present.availability_chart(detail),
            },
            "fragments": {
                "worst-cameras": fragment(
                    "cameras", cameras=detail.worst_cameras, snapshots=snapshots
                ),
                "province-projects": fragment("projects", projects=detail.projects),
                "quota-table": fragment("quota_table", detail=detail),
                "availability-table": fragment("availability_table", detail=detail),
            },
            "_d": detail,
        }

    def pipeline_data() -> dict[str, Any]:
        pipeline = source.pipeline()
        return {
            "figures": present.raw(pipeline),
            "text": {"as_of": present.be(pipeline.as_of)}
            | {f"total.{b}": present.number(n) for b, n in pipeline.totals.items()}
            | {f"late.{b}": present.number(n) for b, n in pipeline.late.items()},
            "fragments": {
                f"stage-{body}": fragment("stage", body=body, entries=entries, provinces=provinces)
                for body, entries in pipeline.stages.items()
            },
            "_p": pipeline,
        }

    def as_json(data: dict[str, Any]) -> JSONResponse:
        return JSONResponse({k: v for k, v in data.items() if not k.startswith("_")})

    def page(request: Request, name: str, data: dict[str, Any], **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            f"{name}.html",
            {
                "page": name,
                "data": data,
                "text": data.get("text", {}),
                "feed_items": list(reversed(feed.items())),
                "feed_after": feed.stream_id(feed.seq),
                **context,
            },
        )

    def resolve(code: str) -> str:
        try:
            return provinces.resolve(code)
        except InputError:
            raise _NotFound(
                f"no province {code!r}; expected an ISO 3166-2:TH code like TH-50"
            ) from None

    # -- pages ---------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def overview_page(request: Request) -> HTMLResponse:
        await feed.wait_loaded(timeout=cfg.refresh_seconds)
        data = await _threaded(overview_data)
        return page(request, "overview", data, o=data["_o"], api="/api/overview")

    @app.get("/provinces", response_class=HTMLResponse)
    def provinces_page(request: Request) -> HTMLResponse:
        data = provinces_data()
        return page(request, "provinces", data, rows=data["_rows"], api="/api/provinces")

    @app.get("/provinces/{code}", response_class=HTMLResponse)
    def province_page(request: Request, code: str) -> Response:
        canonical = resolve(code)
        if canonical != code:
            return RedirectResponse(f"/provinces/{canonical}", status_code=308)
        data = province_data(canonical)
        return page(
            request,
            "province",
            data,
            d=data["_d"],
            p=data["_d"].province,
            api=f"/api/provinces/{canonical}",
        )

    @app.get("/projects", response_class=HTMLResponse)
    def projects_page(request: Request) -> HTMLResponse:
        data = pipeline_data()
        return page(request, "projects", data, pipeline=data["_p"], api="/api/projects")

    @app.get("/alerts", response_class=HTMLResponse)
    async def alerts_page(request: Request) -> HTMLResponse:
        await feed.wait_loaded(timeout=cfg.refresh_seconds)
        return page(request, "alerts", {"text": {}}, api="")

    # -- their figures as JSON -----------------------------------------------------------------

    @app.get("/api/overview")
    def overview_json() -> JSONResponse:
        return as_json(overview_data())

    @app.get("/api/provinces")
    def provinces_json() -> JSONResponse:
        return as_json(provinces_data())

    @app.get("/api/provinces/{code}")
    def province_json(code: str) -> JSONResponse:
        return as_json(province_data(resolve(code)))

    @app.get("/api/projects")
    def projects_json() -> JSONResponse:
        return as_json(pipeline_data())

    @app.get("/api/alerts")
    def alerts_json(cursor: str | None = None) -> JSONResponse:
        """Alerts stored after `cursor` (none: the latest), and the cursor to ask with next."""
        after = figures.AlertCursor.decode(cursor) if cursor else None
        alerts, next_cursor = source.alerts(after)
        return JSONResponse(
            {"alerts": [present.alert_view(a) for a in alerts], "cursor": next_cursor.encode()}
        )

    @app.get("/events/alerts")
    async def alerts_events(request: Request, after: str | None = None) -> StreamingResponse:
        start = feed.after(request.headers.get("last-event-id") or after)
        return StreamingResponse(
            feed.stream(start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- the rest ------------------------------------------------------------------------------

    @app.get("/snapshots/{camera_id}")
    def snapshot(camera_id: str) -> Response:
        path = snapshots_dir / snapshot_name(camera_id)
        if not path.is_file():
            return JSONResponse({"error": f"no snapshot of camera {camera_id}"}, status_code=404)
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        try:
            source.ping()
        except StorageError as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "database": source.description})

    # -- errors --------------------------------------------------------------------------------

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith(("/api/", "/events/"))

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> Response:
        log.warning("figures unavailable: %s", exc)
        message = f"ClickHouse: {exc}"
        if wants_json(request):
            return JSONResponse({"error": message}, status_code=503)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"page": "error", "status": 503, "message": message, "text": {}},
            status_code=503,
        )

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> Response:
        return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)

    @app.exception_handler(_NotFound)
    async def not_found(request: Request, exc: _NotFound) -> Response:
        if wants_json(request):
            return JSONResponse({"error": str(exc)}, status_code=404)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"page": "error", "status": 404, "message": str(exc), "text": {}},
            status_code=404,
        )

    return app


class _NotFound(Exception):
    """A page or figure that does not exist (404)."""


async def _threaded(fn: Any) -> Any:
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(fn)
