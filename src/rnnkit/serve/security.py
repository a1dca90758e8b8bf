"""What the browser is told not to do: Content-Security-Policy and nosniff on every response, and JSON made safe
to inline in a page.

The explorer runs only its own files (``script-src 'self'``), talks only to its own server and loads nothing
from elsewhere; the pages that must inline scripts (``rnnkit inspect``'s file, Swagger UI) allow exactly those
scripts by hash, never ``'unsafe-inline'``. API answers get a policy that allows nothing, so a JSON body opened
as a page cannot run anything either.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

NOSNIFF = (b"x-content-type-options", b"nosniff")
# Shared by every policy: no plug-ins, no <base> rewriting, no form posting elsewhere.
_LOCKED = "object-src 'none'; base-uri 'none'; form-action 'none'"
# The explorer page served at "/" (its scripts and stylesheet come from /static; the favicon is a data: URL).
EXPLORER_POLICY = (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   f"connect-src 'self'; {_LOCKED}; frame-ancestors 'none'")
# API answers (JSON, event streams, errors): nothing in them is meant to run or load.
API_POLICY = f"default-src 'none'; {_LOCKED}; frame-ancestors 'none'"

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)
# Characters that could end or re-open markup around inlined JSON; \uXXXX stands for the same character in JSON.
_MARKUP = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def script_json(value) -> str:
    """JSON for a <script> element: no ``<``, ``>`` or ``&`` left in it, so no text (``</script>``,
    ``<!--``, ``<script``) can end the element or put the HTML parser in another state; the same value."""
    text = json.dumps(value, ensure_ascii=False)
    return re.sub("[<>&]", lambda m: _MARKUP[m.group()], text)


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


def inline_policy(page: str, scripts: str = "", styles: str = "", more: str = "") -> str:
    """A policy for ``page`` that runs its inline <script> and <style> elements, by hash, and nothing else
    beyond ``scripts`` / ``styles`` (further sources, e.g. "'self'") and ``more`` (further directives)."""
    hashes = {"script": [], "style": []}
    for kind, body in _INLINE.findall(page):
        hashes[kind].append(_hash(body))
    script_src = " ".join([*hashes["script"], *scripts.split()]) or "'none'"
    style_src = " ".join([*hashes["style"], *styles.split()]) or "'none'"
    directives = ["default-src 'none'", f"script-src {script_src}", f"style-src {style_src}"]
    return "; ".join([*directives, *filter(None, [more]), _LOCKED])


class SecurityHeaders:
    """ASGI middleware: nosniff on every response, and a Content-Security-Policy unless the route set its own
    (the explorer page's, or ``API_POLICY``)."""

    def __init__(self, app, page_policies: dict[str, str] | None = None):
        self.app = app
        self.page_policies = page_policies or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = self.page_policies.get(scope["path"], API_POLICY).encode()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", policy))
                if NOSNIFF[0] not in names:
                    headers.append(NOSNIFF)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
