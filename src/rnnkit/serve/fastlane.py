"""``POST /v1/classify`` answered in plain ASGI, ahead of FastAPI's routing: the micro-batcher's hot path.

Why: at 32 concurrent clients a classify request costs the server about 1 ms of Python outside the
forward pass, and most of it is the framework around the endpoint (router, dependency solving, the
response model's validation and ``jsonable_encoder``, one coroutine layer per middleware), not the
work. This lane reads the body, validates it with the same pydantic model (in Rust), calls the same
``Service.classify`` and writes the JSON itself. Anything it is not sure about -- another content
type, a body the model rejects -- goes to the FastAPI route unchanged, so errors keep the shape,
field names and messages the route gives them; the route also stays the one the OpenAPI schema and
``create_router`` describe. tests/serve/test_api.py checks both paths give the same bytes.
"""

from __future__ import annotations

import json
import logging

import pydantic_core
from pydantic import ValidationError

from rnnkit.serve.errors import ServeError, error_body
from rnnkit.serve.schemas import ClassifyRequest

log = logging.getLogger("rnnkit.serve")
_JSON = b"application/json"


def classify_body(result: dict) -> bytes:
    """What the route's ``response_model=ClassifyResponse`` writes: ``probabilities`` is null when not asked for."""
    for row in result["results"]:
        row.setdefault("probabilities", None)
    # pydantic-core's encoder, as the route's response model uses: json.dumps writes a probability below 1e-4 as
    # 8.9e-05 where the route writes 0.000089 (same value, other bytes).
    return pydantic_core.to_json(result)


class ClassifyFastLane:
    def __init__(self, app, service, path: str = "/v1/classify"):
        self.app, self.service, self.path = app, service, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if content_type.split(b";", 1)[0].strip().lower() != _JSON:
            return await self.app(scope, receive, send)
        body, more, message = b"", True, None
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the framework see the disconnect
                return await self.app(scope, _replay(body, message, receive), send)
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            request = ClassifyRequest.model_validate_json(body)
        except ValidationError:
            # The route words every validation failure (invalid JSON, a missing field, a typo): let it.
            return await self.app(scope, _replay(body, None, receive), send)
        rid = scope.get("state", {}).get("request_id")
        try:
            result = await self.service.classify(request.texts, request.model, request.top_k, request.probabilities)
            status, payload = 200, classify_body(result)
        except ServeError as err:
            status = err.status
            payload = json.dumps(error_body(err.status, err.code, err.message, err.details, rid)).encode()
        except Exception as err:  # noqa: BLE001 -- the same answer as the app's handler for the unexpected
            log.exception("unexpected error on POST %s", self.path)
            status = 500
            payload = json.dumps(error_body(500, "internal_error", f"internal error ({type(err).__name__}); see "
                                            "the server log", rid=rid)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(payload)).encode()), (b"content-type", _JSON)]})
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, last: dict | None, receive):
    """A ``receive`` that hands the app the body already read, then whatever comes next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}] if last is None else [
        {"type": "http.request", "body": body, "more_body": True}, last]

    async def replay():
        return pending.pop(0) if pending else await receive()

    return replay
