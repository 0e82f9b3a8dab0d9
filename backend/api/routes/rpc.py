"""``POST /rpc``: standard Ethereum JSON-RPC for the embedded chain (mounted only then)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from backend.api.errors import ApiError
from backend.api.schemas import ErrorPublic
from backend.limits import loads
from backend.rpc_proxy import JsonRpcProxy

router = APIRouter(tags=["rpc"])

#: What each request object must be (checked before any is run; a bad one fails the batch).
_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["method"],
    "properties": {
        "jsonrpc": {"type": "string"},
        "method": {"type": "string"},
        "params": {"type": "array"},
    },
}

#: Largest JSON-RPC body accepted.
MAX_RPC_BYTES = 2 * 1024 * 1024


def envelope_problem(payload: Any) -> str | None:
    """What is wrong with a request's shape (see `_REQUEST`), or None."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        return "an empty batch"
    for n, item in enumerate(items):
        where = f"request {n} of the batch" if isinstance(payload, list) else "the request"
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            return f"{where} is not an object with a string `method`"
        if "params" in item and not isinstance(item["params"], list):
            return f"{where} has `params` that is not an array"
        if "jsonrpc" in item and not isinstance(item["jsonrpc"], str):
            return f"{where} has a `jsonrpc` that is not a string"
    return None


def holds_lone_surrogate(payload: Any) -> bool:
    """Whether the parsed JSON holds a string with an unpaired UTF-16 surrogate (``"\\ud800"``).

    JSON's escapes can spell one, but it is no Unicode text: it cannot be encoded to forward
    the request or to echo its ``id`` in the answer.
    """
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _rpc_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}},
        status_code=status,
    )


@router.post(
    "/rpc",
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "description": "A JSON-RPC 2.0 request, or a batch of them.",
                        "oneOf": [_REQUEST, {"type": "array", "items": _REQUEST, "minItems": 1}],
                    }
                }
            },
        }
    },
    responses={
        200: {
            "content": {
                "application/json": {"schema": {"type": ["object", "array"]}},
            },
            "description": "A JSON-RPC 2.0 response or batch (a method's errors travel inside).",
        },
        400: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "Not JSON (-32700), or not a request object or a non-empty batch of "
            "them (-32600): the JSON-RPC error, with id null.",
        },
        413: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": f"Over {MAX_RPC_BYTES} bytes: a JSON-RPC invalid request (-32600).",
        },
        415: {"model": ErrorPublic, "description": "Not `Content-Type: application/json`."},
        422: {"model": ErrorPublic, "description": "The body nests deeper than 64 levels."},
    },
)
async def rpc(request: Request) -> JSONResponse:
    """Ethereum JSON-RPC for the in-process chain: point web3, viem, ethers or cast at this URL.

    The body must be ``application/json`` (415 otherwise), at most 2 MiB (413) and JSON (400,
    with a JSON-RPC parse error); one nested deeper than 64 levels is refused with 422 before
    it is parsed."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(
            f"send JSON-RPC with Content-Type: application/json (got {kind or 'none'!r})",
            status=415,
        )
    raw = await request.body()
    if len(raw) > MAX_RPC_BYTES:
        return _rpc_error(413, -32600, f"request too large: at most {MAX_RPC_BYTES} bytes")
    try:
        # Nested too deep: JsonTooDeep, answered 422 like any request body (backend.limits).
        payload: Any = loads(raw, "the JSON-RPC request")
    except ValueError:
        return _rpc_error(400, -32700, "parse error: the body is not JSON")
    if holds_lone_surrogate(payload):
        return _rpc_error(
            400, -32700, "parse error: a string holds an unpaired UTF-16 surrogate escape"
        )
    problem = envelope_problem(payload)
    if problem is not None:
        return _rpc_error(400, -32600, f"invalid request: {problem}")
    proxy: JsonRpcProxy = request.app.state.rpc_proxy
    return JSONResponse(await run_in_threadpool(proxy.handle, payload))
