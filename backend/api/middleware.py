"""ASGI middleware of the API.

`AllowedMethods` answers 405 with the right ``Allow`` for an API path asked with a method it
does not take (otherwise the web front-end's catch-all mount would answer ``Allow: GET, HEAD``
for ``OPTIONS /auth/nonce``, a path whose only method is POST).

`JsonDepthLimit` refuses deeply nested JSON bodies unparsed.

`BodyTimeout` answers 408 when a client stops sending in the middle of a request body: uvicorn
itself waits for the rest of a body for ever (its only timeout is the keep-alive one, between
requests), so without it a client that sends half a body holds its request open until it
disconnects.

FastAPI parses a route's JSON body with the recursive `json.loads` before any of our code runs,
so the depth check sits in front of it: every body FastAPI would read as JSON (no
``Content-Type``, ``application/json`` or ``application/*+json``) is scanned
(`backend.limits.json_depth`) and refused with 422 when it nests deeper than
`backend.limits.MAX_JSON_DEPTH`, with the answer `backend.api.errors.describe` gives.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
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
        await JSONResponse(
            {"detail": detail, "code": "http_405"}, status_code=405, headers={"Allow": allow}
        )(scope, receive, send)


class BodyTimeout:
    """Answer 408, and close the connection, when a request body stalls for `idle_s` seconds.

    Each wait for the next piece of the body is bounded; a slow client that keeps sending is
    never cut off. Once the body is complete, or the answer has started, nothing is timed (a
    streaming answer listens for the client's disconnect through the same ``receive``). After
    the 408 the app sees the client as gone, and whatever it answers is dropped.
    """

    def __init__(self, app: ASGIApp, idle_s: float) -> None:
        """Wrap `app`, waiting at most `idle_s` seconds for each piece of a body."""
        self.app = app
        self.idle_s = idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a ``receive`` that times out a stalled body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"body_done": False, "started": False, "timed_out": False}

        async def timed_receive() -> AsgiMessage:
            if state["timed_out"]:
                return {"type": "http.disconnect"}
            if state["body_done"] or state["started"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_s)
            except TimeoutError:
                state["timed_out"] = True
                detail = (
                    f"the request body stalled: nothing arrived for {self.idle_s:g} s before "
                    "the Content-Length announced was reached; send the whole body without "
                    "pausing, or a Content-Length that matches it"
                )
                await JSONResponse(
                    {"detail": detail, "code": "http_408"},
                    status_code=408,
                    headers={"Connection": "close"},
                )(scope, receive, send)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def guarded_send(message: AsgiMessage) -> None:
            if state["timed_out"]:
                return  # answered 408 already
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except ClientDisconnect:
            if not state["timed_out"]:
                raise  # a client that really left, as before


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
            status, body, headers = describe(exc) or (
                422,
                {"detail": str(exc), "code": "invalid_request"},
                {},
            )
            await JSONResponse(body, status_code=status, headers=headers or None)(
                scope, receive, send
            )
            return

        async def replay() -> AsgiMessage:
            if received:
                return received.pop(0)
            return await receive()

        await self.app(scope, replay, send)


__all__ = ["AllowedMethods", "BodyTimeout", "JsonDepthLimit", "parsed_as_json"]
