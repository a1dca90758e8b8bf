"""The HTTP face: ``create_router(service)`` for an existing FastAPI app, ``create_app(models)`` for a whole server.

    from rnnkit.serve import Service, create_router, install_error_handlers
    service = Service({"news": "runs/news"})
    app.include_router(create_router(service), prefix="/rnn")   # in your own FastAPI app
    install_error_handlers(app)                                   # optional: rnnkit's error shape everywhere

Routes: POST /v1/classify, /v1/generate (SSE), /v1/inspect; GET /v1/models, /healthz, /readyz;
the explorer page at / with its files under /static; Swagger UI at /docs from locally served files
(fastapi-offline's copy of Swagger UI 5; without that package /docs says so and /openapi.json remains).
Every response carries a Content-Security-Policy and nosniff (rnnkit.serve.security).
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from rnnkit.serve.config import ServeConfig
from rnnkit.serve.errors import ServeError, install_error_handlers
from rnnkit.serve.fastlane import ClassifyFastLane
from rnnkit.serve.limits import BodyLimit, RequestId
from rnnkit.serve.schemas import (
    ERROR_RESPONSES,
    ClassifyRequest,
    ClassifyResponse,
    GenerateRequest,
    GenerateResponse,
    InspectRequest,
    ModelsResponse,
)
from rnnkit.serve.security import EXPLORER_POLICY, SecurityHeaders, inline_policy
from rnnkit.serve.service import Service

STATIC = Path(str(resources.files("rnnkit.serve") / "static"))


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_router(service: Service) -> APIRouter:
    """The API routes (no page, no docs), bound to ``service``."""
    router = APIRouter()

    @router.post("/v1/classify", response_model=ClassifyResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def classify(body: ClassifyRequest) -> dict:
        """Top-k labels (and optionally every probability) for each text; concurrent requests are micro-batched."""
        return await service.classify(body.texts, body.model, body.top_k, body.probabilities)

    @router.post("/v1/generate", responses={**ERROR_RESPONSES, 200: {
        "description": "with stream=true (default): text/event-stream of 'token' events, then 'done'; "
                       "with stream=false: one JSON body",
        "content": {"text/event-stream": {}, "application/json": {"schema": GenerateResponse.model_json_schema()}}}},
        tags=["predict"])
    async def generate(body: GenerateRequest):
        """Sample from a language model, streamed as Server-Sent Events token by token."""
        if not body.stream:
            return JSONResponse(await service.generate(body))
        events = await service.generate_events(body)  # limits are checked here, before the stream starts

        async def stream():
            async for event, data in events:
                yield _sse(event, data)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    @router.post("/v1/inspect", responses=ERROR_RESPONSES, tags=["inspect"])
    async def inspect(body: InspectRequest) -> dict:
        """Per token: the prediction so far, every layer's states and gates, gate saturation."""
        return await service.inspect(body)

    @router.get("/v1/models", response_model=ModelsResponse, tags=["models"])
    async def models() -> dict:
        return {"models": service.models()}

    @router.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """The process is up; ``pid`` tells which worker process answered (``rnnkit serve --workers N``)."""
        return {"status": "ok", "pid": os.getpid()}

    @router.get("/readyz", tags=["health"], responses={503: ERROR_RESPONSES[503]})
    async def readyz() -> dict:
        """Ready for traffic: models loaded and not shutting down."""
        if service.draining:
            raise ServeError(503, "shutting_down", "the server is shutting down")
        return {"status": "ready", "models": [m.name for m in service.registry],
                "batching": service.batch_stats(), "pid": os.getpid()}

    return router


def _page_routes(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="rnnkit-static")
    swagger = _swagger_assets()
    if swagger is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger), name="swagger-assets")

    @app.get("/", include_in_schema=False)
    async def explorer():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if swagger is None:
            return HTMLResponse("<p>Swagger UI's files are not installed (pip install fastapi-offline); "
                                "the schema is at <a href='/openapi.json'>/openapi.json</a>.</p>")
        # Swagger UI's files come from the fastapi-offline package, served here: the page loads nothing from a CDN.
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="rnnkit API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png")
        # Its one inline script (the set-up call) runs by hash; the rest comes from this server.
        page.headers["content-security-policy"] = inline_policy(
            page.body.decode("utf-8"), scripts="'self'", styles="'self'",
            more="img-src 'self' data:; connect-src 'self'")
        return page


def _swagger_assets() -> Path | None:
    """The Swagger UI 5 files that fastapi-offline ships (FastAPI's own /docs would fetch them from a CDN)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).with_name("static")
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def create_app(models, config: ServeConfig | None = None, service: Service | None = None) -> FastAPI:
    """A complete server: API, explorer page, local Swagger UI, one error shape, body limit, clean shutdown.

    ``models``: paths, ``ServedModel``s, or a dict name → Classifier / LanguageModel / path.
    """
    service = service or Service(models, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # uvicorn has already let in-flight requests finish; drain what the batchers still hold.
        await service.close()

    app = FastAPI(title="rnnkit", version=_version(), docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Classify, generate and inspect with rnnkit's recurrent models.")
    app.state.service = service
    install_error_handlers(app)
    app.include_router(create_router(service))
    _page_routes(app)
    app.add_middleware(ClassifyFastLane, service=service)  # inside the body limit and the request id
    app.add_middleware(BodyLimit, max_bytes=service.config.max_body_bytes)
    app.add_middleware(RequestId)
    app.add_middleware(SecurityHeaders, page_policies={"/": EXPLORER_POLICY})  # outermost: errors get them too
    return app


def _version() -> str:
    from rnnkit import __version__

    return __version__
