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

# Names are imported on first use: the CLI reads this package's config without loading FastAPI.
_LAZY = {
    "create_app": "app", "create_router": "app", "Service": "service", "ServeConfig": "config",
    "ServeError": "errors", "install_error_handlers": "errors", "ModelRegistry": "models",
    "ServedModel": "models", "load_model": "models", "serve": "server", "inspect_classifier": "inspection",
    "inspect_language_model": "inspection", "span_units": "inspection",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"rnnkit.serve.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'rnnkit.serve' has no attribute {name!r}")


__all__ = sorted(_LAZY)
