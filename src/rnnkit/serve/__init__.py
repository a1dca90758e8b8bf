"""Serving models over HTTP (FastAPI + uvicorn) with a state-explorer page.

    rnnkit serve runs/news runs/lm            # CLI, on 127.0.0.1:8000

    from rnnkit.serve import create_app       # a whole app
    app = create_app(["runs/news", "runs/lm"])

    from rnnkit.serve import Service, create_router, install_error_handlers   # inside your own FastAPI app
    service = Service({"news": "runs/news"})
    my_app.include_router(create_router(service), prefix="/rnn")
    install_error_handlers(my_app)            # optional: rnnkit's JSON error shape for every route
    # and `await service.close()` in your app's shutdown, to drain the micro-batchers
"""

from typing import TYPE_CHECKING

from rnnkit.lazy_names import lazy_names

# Names are imported on first use: the CLI reads this package's config without loading FastAPI.
_HOMES = {
    **dict.fromkeys(["create_app", "create_router"], "rnnkit.serve.app"),
    "Service": "rnnkit.serve.service",
    "ServeConfig": "rnnkit.serve.config",
    **dict.fromkeys(["ServeError", "install_error_handlers"], "rnnkit.serve.errors"),
    **dict.fromkeys(["ModelRegistry", "ServedModel", "load_model"], "rnnkit.serve.models"),
    "serve": "rnnkit.serve.server",
    **dict.fromkeys(["inspect_classifier", "inspect_language_model", "span_units"], "rnnkit.serve.inspection"),
}
__getattr__, __dir__ = lazy_names(__name__, _HOMES)

if TYPE_CHECKING:
    from rnnkit.serve.app import create_app, create_router
    from rnnkit.serve.config import ServeConfig
    from rnnkit.serve.errors import ServeError, install_error_handlers
    from rnnkit.serve.inspection import inspect_classifier, inspect_language_model, span_units
    from rnnkit.serve.models import ModelRegistry, ServedModel, load_model
    from rnnkit.serve.server import serve
    from rnnkit.serve.service import Service

__all__ = [
    "ModelRegistry", "ServeConfig", "ServeError", "ServedModel", "Service", "create_app", "create_router",
    "inspect_classifier", "inspect_language_model", "install_error_handlers", "load_model", "serve", "span_units",
]
