"""``POST /rpc``: standard Ethereum JSON-RPC for the embedded chain (mounted only then)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from backend.api.schemas import ErrorPublic
from backend.limits import loads
from backend.rpc_proxy import JsonRpcProxy

router = APIRouter(tags=["rpc"])

#: Largest JSON-RPC body accepted.
MAX_RPC_BYTES = 2 * 1024 * 1024


@router.post(
    "/rpc",
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "description": "A JSON-RPC 2.0 request or batch."}
                }
            },
        }
    },
    responses={
        200: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "A JSON-RPC 2.0 response (errors travel inside it).",
        },
        422: {"model": ErrorPublic, "description": "The body nests deeper than 64 levels."},
    },
)
async def rpc(request: Request) -> JSONResponse:
    """Ethereum JSON-RPC for the in-process chain: point web3, viem, ethers or cast at this URL.

    A body nested deeper than 64 levels is refused with 422 before it is parsed."""
    raw = await request.body()
    if len(raw) > MAX_RPC_BYTES:
        return JSONResponse(
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32600, "message": "request too large"},
            }
        )
    try:
        # Nested too deep: JsonTooDeep, answered 422 like any request body (backend.limits).
        payload: Any = loads(raw, "the JSON-RPC request")
    except ValueError:
        return JSONResponse(
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
        )
    proxy: JsonRpcProxy = request.app.state.rpc_proxy
    return JSONResponse(await run_in_threadpool(proxy.handle, payload))
