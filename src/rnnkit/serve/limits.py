"""Two small ASGI middlewares: a request-body size limit and a request id on every response.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: that one costs a task and a queue per
request, and the classify latency budget is a few milliseconds.
"""

from __future__ import annotations

import json
import os
import re

from rnnkit.serve.errors import error_body

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestId:
    """Takes the client's ``x-request-id`` (if sane) or makes one; the error body and the response header carry it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = given if _CLIENT_ID.match(given) else os.urandom(8).hex()  # as random as uuid4's first 16, cheaper
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimit:
    """Answers 413 in the JSON error shape when the body is larger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, scope, send, size: str):
        rid = scope.get("state", {}).get("request_id")
        body = json.dumps(error_body(413, "payload_too_large", f"the request body is {size} bytes; the limit is "
                                     f"{self.max_bytes}", rid=rid)).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, send, declared.decode())
        if declared is not None and declared.isdigit():
            return await self.app(scope, receive, send)  # the server enforces the declared length
        # No declared length (chunked): read the body up to the limit, then replay it to the app.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._reject(scope, send, f"more than {self.max_bytes}")
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
