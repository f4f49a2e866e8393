"""The FastAPI app: recommendations, items, cold-start ingestion, feedback, health, metrics, web page.

Example:
    >>> from fastapi.testclient import TestClient
    >>> app = create_app(ServingEngine(load_bundle("runs/vbpr"), state_dir="state"))  # doctest: +SKIP
    >>> TestClient(app).get("/users/196/recommendations", params={"k": 5}).json()  # doctest: +SKIP
"""
from __future__ import annotations

import hmac
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from prismrec.models.base import ColdStartError
from prismrec.serving import schemas
from prismrec.serving.cache import FastRecommendations, ResponseCache, recommendations_body
from prismrec.serving.ingest import (
    DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_PIXELS, ID_MAX_LENGTH, ID_REGEX, InvalidInput, check_image, save_image)
from prismrec.serving.middleware import BodyLimit, Metrics, MetricsMiddleware

WEB_DIR = Path(__file__).parent / "web"
API_KEY_ENV = "PRISMREC_API_KEY"
ID_PATH = {"min_length": 1, "max_length": 128}
RECOMMENDATIONS = "/users/{user_id}/recommendations"


@dataclass
class ServingSettings:
    """Limits and the write key; ``api_key`` defaults to the ``PRISMREC_API_KEY`` environment variable."""

    api_key: str | None = field(default_factory=lambda: os.environ.get(API_KEY_ENV) or None)
    max_body_bytes: int = 8 * 1024 * 1024
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_k: int = schemas.MAX_K
    response_cache_bytes: int = 64 * 1024 * 1024  # encoded recommendation lists kept (0: none)


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeyError)
    async def unknown(request: Request, error: KeyError):
        message = str(error.args[0]) if error.args else "unknown id"
        return _error(404, "unknown_user" if message.startswith("unknown user") else "unknown_item", message)

    @app.exception_handler(ColdStartError)
    async def cold_start(request: Request, error: ColdStartError):
        return _error(409, "cold_start_unsupported", str(error))

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, error: InvalidInput):
        return _error(400, "invalid_input", str(error))

    @app.exception_handler(ValueError)
    async def conflict(request: Request, error: ValueError):
        return _error(409, "conflict", str(error))

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, error: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'] if p not in ('body', 'query', 'path'))}: {_message(e)}"
                 for e in error.errors()]
        return _error(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
        return _error(error.status_code, codes.get(error.status_code, "http_error"), str(error.detail))


def _message(error: dict) -> str:
    if tuple(error["loc"]) == ("body", "image"):  # a text part named image, not a file
        return "send the image as a file part with a filename (e.g. curl -F image=@poster.jpg), not as text"
    if error["type"] == "string_pattern_mismatch":  # the id rule (the only pattern in the API)
        return f"{error['input']!r} is not allowed: use {schemas.ID_RULE}"
    return error["msg"]


def create_app(engine, settings: ServingSettings | None = None) -> FastAPI:
    """Build the app over a :class:`~prismrec.serving.engine.ServingEngine`."""
    settings = settings or ServingSettings()
    metrics = Metrics()
    responses = {code: {"model": schemas.Error} for code in (400, 401, 404, 409, 413, 422)}
    # /metrics is PrismRec's own; FastAPI's native OpenTelemetry hooks (0.165+) would look up the global
    # providers on every request
    off = {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}} \
        if "telemetry" in inspect.signature(FastAPI).parameters else {}
    app = FastAPI(title="PrismRec", description="Multimodal recommendations from a PrismRec bundle.",
                  responses=responses, **off)
    app.state.engine, app.state.settings, app.state.metrics = engine, settings, metrics
    app.state.response_cache = ResponseCache(settings.response_cache_bytes)
    _install_error_handlers(app)

    def require_key(x_api_key: Optional[str] = Header(default=None, description="needed when the server has one")):
        if settings.api_key is None:
            return
        if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), settings.api_key.encode()):
            raise HTTPException(401, f"this write needs the X-API-Key header set to the server's key ({API_KEY_ENV})")

    k_query = Query(10, ge=1, le=settings.max_k, description=f"number of items, 1..{settings.max_k}")
    _read_routes(app, engine, k_query)
    _write_routes(app, engine, settings, require_key)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    route = next(r for r in app.routes if getattr(r, "path", "") == RECOMMENDATIONS)
    app.add_middleware(FastRecommendations, cache=app.state.response_cache, engine=engine, route=route,
                       max_k=settings.max_k, max_id_length=ID_PATH["max_length"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outside the cache: hits are counted and timed
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def item_view(engine, row: int) -> dict:
    described = engine.catalog.describe(row)
    described["image_url"] = f"/items/{described['item_id']}/image" if described["has_image"] else None
    return described


def _read_routes(app: FastAPI, engine, k_query) -> None:
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/health", response_model=schemas.Health)
    async def health():
        return {"status": "ok", "model": type(engine.model).__name__, "n_users": len(engine.user_ids),
                "n_items": len(engine.catalog), "index": engine.index.kind,
                "accepts_new_items": engine.can_add_items, "features": [s.name for s in engine.bundle.features]}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        return app.state.metrics.render()

    @app.get("/users", response_model=schemas.UserList)
    def users(limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
        return {"users": engine.user_ids[offset:offset + limit], "total": len(engine.user_ids)}

    @app.get("/users/{user_id}", response_model=schemas.User)
    def user(user_id: str = PathParam(**ID_PATH), limit: int = Query(50, ge=1, le=1000)):
        rows = engine.history_rows(user_id, limit)
        return {"user_id": user_id, "history": [item_view(engine, row) for row in rows]}

    # The hot read path runs on the event loop: its work (one small product and top-k, well under a
    # millisecond for exact search up to ~100k items) costs less than a hop to the thread pool. It
    # answers from the response cache while the user's and the catalogue's versions are unchanged,
    # and returns its JSON bytes itself: FastAPI then skips re-validating them against the
    # response model, which still documents them (the OpenAPI fuzz test checks they conform).
    # Plain requests do not even get here: FastRecommendations answers them before routing.
    cache = app.state.response_cache

    @app.get(RECOMMENDATIONS, response_model=schemas.Recommendations)
    async def recommendations(user_id: str = PathParam(**ID_PATH), k: int = k_query, exclude_seen: bool = True):
        return Response(recommendations_body(engine, cache, user_id, k, exclude_seen), media_type="application/json")

    @app.get("/items", response_model=schemas.ItemList)
    def search(q: str = Query(..., min_length=1, max_length=200), limit: int = Query(20, ge=1, le=200)):
        found = engine.catalog.search(q, limit)
        return {"items": [item_view(engine, engine.catalog.row(hit["item_id"])) for hit in found]}

    @app.get("/items/{item_id}", response_model=schemas.Item)
    async def item(item_id: str = PathParam(**ID_PATH)):
        return item_view(engine, engine.catalog.row(item_id))

    @app.get("/items/{item_id}/image", responses={200: {"content": {"image/*": {}}}})
    def image(item_id: str = PathParam(**ID_PATH)):
        path = engine.catalog.image_path(engine.catalog.row(item_id))  # paths come from the catalogue only
        if path is None or not path.is_file():
            raise HTTPException(404, f"item {item_id!r} has no image")
        return FileResponse(path)

    @app.get("/items/{item_id}/similar", response_model=schemas.SimilarItems)
    def similar(item_id: str = PathParam(**ID_PATH), k: int = k_query):
        return {"item_id": item_id, "k": k, "items": engine.similar(item_id, k)}

    @app.get("/items/{item_id}/audience", response_model=schemas.Audience)
    def audience(item_id: str = PathParam(**ID_PATH), k: int = k_query, limit: int = Query(20, ge=1, le=1000)):
        return engine.audience(item_id, k, limit)


def _write_routes(app: FastAPI, engine, settings: ServingSettings, require_key) -> None:
    @app.post("/items", response_model=schemas.IngestedItem, status_code=201, dependencies=[Depends(require_key)])
    def add_item(item_id: str = Form(..., pattern=ID_REGEX, max_length=ID_MAX_LENGTH, description=schemas.ID_RULE),
                 title: str = Form(..., min_length=1, max_length=500),
                 fields: str = Form("{}", max_length=20000, description='other text fields as JSON, e.g. {"plot": "..."}'),
                 image: Optional[UploadFile] = File(None)):
        engine.check_can_ingest()  # an ID-only model says so before any upload is processed
        try:
            extra = json.loads(fields)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"fields must be a JSON object of text fields ({error})") from None
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            raise InvalidInput('fields must be a JSON object of strings, e.g. {"plot": "A heist."}')
        stored_image = None
        if image is not None and image.filename:
            data = image.file.read(settings.max_image_bytes + 1)
            kind = check_image(data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_pixels)
            stored_image = save_image(data, kind, engine.media_dir)
        result = engine.add_item(item_id, {**extra, "title": title}, stored_image)
        return {"item": item_view(engine, engine.catalog.row(item_id)), "missing_content": result["missing_content"],
                "audience": engine.audience(item_id, 10, 20)}

    @app.post("/interactions", response_model=schemas.InteractionAck, status_code=201,
              dependencies=[Depends(require_key)])
    def add_interaction(event: schemas.InteractionIn):
        return engine.add_interaction(event.user_id, event.item_id, event=event.event, timestamp=event.timestamp)
