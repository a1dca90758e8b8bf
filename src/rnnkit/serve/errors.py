"""One JSON error shape for every failure the server answers, whatever raised it.

    {"error": {"status": 422, "code": "validation_error", "message": "...",
               "details": [{"field": "texts[0]", "message": "..."}], "request_id": "..."}}

``install_error_handlers(app)`` routes FastAPI's validation errors, Starlette's 404/405 and
anything unexpected (500, without leaking a traceback) into it.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("rnnkit.serve")

_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
          413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
          429: "too_many_requests", 500: "internal_error", 503: "unavailable", 504: "timeout"}


class ServeError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a sentence for people."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 details: list[dict] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or ([{"field": field, "message": message}] if field else [])


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        request.state.request_id = rid
    return rid


def error_body(status: int, code: str, message: str, details: list[dict] | None = None,
               rid: str | None = None) -> dict:
    return {"error": {"status": status, "code": code, "message": message, "details": details or [],
                      "request_id": rid}}


def error_response(request: Request, error: ServeError, headers: dict | None = None) -> JSONResponse:
    rid = request_id(request)
    return JSONResponse(error_body(error.status, error.code, error.message, error.details, rid),
                        status_code=error.status, headers=headers)


def _field(loc) -> str:
    """('body', 'texts', 0) → 'texts[0]'; FastAPI's location parts joined the way a client would write them."""
    parts = [p for p in loc if p != "body"] or list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(request, ServeError(400, "invalid_json", "the request body is not valid JSON"))
    if len(errors) == 1 and tuple(errors[0].get("loc", ())) == ("body",) and errors[0].get("type") in (
            "model_attributes_type", "dict_type", "missing"):
        return error_response(request, ServeError(422, "validation_error", "the body must be a JSON object, sent "
                                                  "with content-type: application/json", field="body"))
    details = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in errors]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    message = f"{first['field']}: {first['message']}" + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
    return error_response(request, ServeError(422, "validation_error", message, details=details))


def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if status == 404:
        message = f"no route {request.url.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(request, ServeError(status, _CODES.get(status, "http_error"), message),
                          headers=getattr(exc, "headers", None))


def _serve(request: Request, exc: ServeError) -> JSONResponse:
    return error_response(request, exc)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, ServeError(500, "internal_error",
                                              f"internal error ({type(exc).__name__}); see the server log"))


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` (also routes that are not rnnkit's) answer in the shape above."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ServeError, _serve)
    app.add_exception_handler(Exception, _unexpected)
