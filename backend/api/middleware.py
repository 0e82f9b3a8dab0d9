"""ASGI middleware of the API.

`AllowedMethods` answers 405 with the right ``Allow`` for an API path asked with a method it
does not take (otherwise the web front-end's catch-all mount would answer ``Allow: GET, HEAD``
for ``OPTIONS /auth/nonce``, a path whose only method is POST).

`JsonDepthLimit` refuses deeply nested JSON bodies unparsed.

FastAPI parses a route's JSON body with the recursive `json.loads` before any of our code runs,
so the depth check sits in front of it: every body FastAPI would read as JSON (no
``Content-Type``, ``application/json`` or ``application/*+json``) is scanned
(`backend.limits.json_depth`) and refused with 422 when it nests deeper than
`backend.limits.MAX_JSON_DEPTH`, with the answer `backend.api.errors.describe` gives.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from starlette.routing import compile_path

from backend.api.errors import describe, parsed_as_json
from backend.errors import JsonTooDeep
from backend.limits import check_json_depth

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send
    from starlette.types import Message as AsgiMessage


class AllowedMethods:
    """Answer 405 naming the allowed methods when a path is the API's but the method is not.

    The paths and methods are the app's OpenAPI document's (read once, at the first request), so
    what ``Allow`` says is what the document says.
    """

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        """Wrap `app`, whose operations `api.openapi()` describes."""
        self.app = app
        self.api = api
        self._paths: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def paths(self) -> list[tuple[re.Pattern[str], frozenset[str]]]:
        """Each documented path as a pattern, with its methods (FastAPI adds no HEAD to GET)."""
        if self._paths is None:
            found = []
            for template, item in self.api.openapi().get("paths", {}).items():
                methods = frozenset(m.upper() for m in item)
                found.append((compile_path(template)[0], methods))
            self._paths = found
        return self._paths

    def allowed(self, method: str, path: str) -> set[str] | None:
        """The methods `path` takes, if it is documented and `method` is not one of them."""
        methods: set[str] = set()
        for pattern, taken in self.paths():
            if pattern.match(path):
                if method in taken:
                    return None
                methods |= taken
        return methods or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 405 with ``Allow``."""
        methods = None
        if scope["type"] == "http":
            methods = self.allowed(scope["method"], scope["path"])
        if methods is None:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(methods))
        detail = f"{scope['method']} is not allowed on {scope['path']}; use {allow}"
        await JSONResponse({"detail": detail}, status_code=405, headers={"Allow": allow})(
            scope, receive, send
        )


class JsonDepthLimit:
    """Refuse, with 422, a JSON request body nested deeper than `MAX_JSON_DEPTH`.

    Other bodies (CSV uploads) stream through untouched; a JSON body is read whole (FastAPI
    reads it whole anyway), checked, and handed on unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body of an HTTP request that will be parsed as JSON, then pass it on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = None
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1")
        if not parsed_as_json(content_type):
            await self.app(scope, receive, send)
            return
        received: list[AsgiMessage] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break  # the client left; let the app see it as it would have
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            check_json_depth(b"".join(chunks), "the request body")
        except JsonTooDeep as exc:
            status, body, headers = describe(exc) or (422, {"detail": str(exc)}, {})
            await JSONResponse(body, status_code=status, headers=headers or None)(
                scope, receive, send
            )
            return

        async def replay() -> AsgiMessage:
            if received:
                return received.pop(0)
            return await receive()

        await self.app(scope, replay, send)


__all__ = ["AllowedMethods", "JsonDepthLimit", "parsed_as_json"]
