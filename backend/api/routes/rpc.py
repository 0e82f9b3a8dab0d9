"""``POST /rpc``: standard Ethereum JSON-RPC for the embedded chain (mounted only then)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from backend.api.deps import AppContext
from backend.api.errors import ApiError, Forbidden
from backend.limits import loads
from backend.rpc_proxy import JsonRpcProxy
from backend.schemas import ErrorPublic

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

#: Methods anyone may call: reading the chain, and sending a transaction signed elsewhere.
PUBLIC_METHODS = frozenset(
    {
        "web3_clientVersion",
        "net_version",
        "net_listening",
        "eth_chainId",
        "eth_syncing",
        "eth_blockNumber",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_accounts",
        "eth_getBalance",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getBlockTransactionCountByHash",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getLogs",
        "eth_call",
        "eth_estimateGas",
        "eth_createAccessList",
        "eth_sendRawTransaction",
    }
)
#: The development faucet: ``eth_sendTransaction`` from one of the node's own accounts, a plain
#: transfer (no call data) of at most this much.
FAUCET_MAX_WEI = 1000 * 10**18

#: Largest JSON-RPC body accepted.
MAX_RPC_BYTES = 2 * 1024 * 1024


def _faucet_problem(item: dict[str, Any]) -> str | None:
    params = item.get("params") or []
    tx = params[0] if params and isinstance(params[0], dict) else None
    if tx is None:
        return "eth_sendTransaction takes a transaction object"
    if any(tx.get(k) not in (None, "0x", "") for k in ("data", "input")):
        return (
            "eth_sendTransaction is only the development faucet (a plain transfer); sign "
            "transactions yourself and send them with eth_sendRawTransaction"
        )
    try:
        value = int(str(tx.get("value", "0x0")), 16)
    except ValueError:
        return "the faucet's value must be a hex quantity"
    if value > FAUCET_MAX_WEI:
        return f"the faucet gives at most {FAUCET_MAX_WEI} wei at a time"
    return None


def method_problem(payload: Any) -> str | None:
    """Why a request (or a request of a batch) names a method this public endpoint does not
    serve, or None. Moving time, mining, snapshots and reverts are for tests in-process only;
    ``eth_sendTransaction`` is only the faucet."""
    for item in payload if isinstance(payload, list) else [payload]:
        method = item["method"]
        if method == "eth_sendTransaction":
            problem = _faucet_problem(item)
            if problem is not None:
                return problem
        elif method not in PUBLIC_METHODS:
            shown = method if len(method) <= 40 else method[:40] + "…"
            return (
                f"{shown} is not served here: this endpoint reads the chain and sends signed "
                "transactions (eth_sendRawTransaction)"
            )
    return None


def origin_problem(request: Request, domain: str) -> str | None:
    """Why a request's ``Host`` or ``Origin`` is not this server's, or None.

    ``Host`` must be the server's own (or loopback on its port), which defeats DNS rebinding;
    an ``Origin``, when a browser sends one, must name that same host.
    """
    host = request.headers.get("host", "").lower()
    port = host.rsplit(":", 1)[1] if ":" in host.rsplit("]", 1)[-1] else ""
    local = {f"{h}:{port}" if port else h for h in ("localhost", "127.0.0.1", "[::1]")}
    allowed = {domain.lower(), *local}
    if host not in allowed:
        return f"Host {host!r} is not this server ({domain})"
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host:
        return f"a page from {origin} may not drive this chain"
    return None


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
        403: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "A method this endpoint does not serve (JSON-RPC error -32601), or "
            "a Host or Origin that is not this server's (`detail`).",
        },
        415: {"model": ErrorPublic, "description": "Not `Content-Type: application/json`."},
        422: {"model": ErrorPublic, "description": "The body nests deeper than 64 levels."},
    },
)
async def rpc(request: Request) -> JSONResponse:
    """Ethereum JSON-RPC for the in-process chain: point web3, viem, ethers or cast at this URL.

    It serves reading methods and ``eth_sendRawTransaction``, and ``eth_sendTransaction`` only
    as the development faucet (a plain transfer from a node account): anything else, such as
    moving time or reverting the chain, is 403 with a JSON-RPC error (-32601), and nothing in
    the batch runs. ``Host`` must be this server's and an ``Origin`` the same (403). The body
    must be ``application/json`` (415 otherwise), at most 2 MiB (413) and JSON (400, with a
    JSON-RPC parse error); one nested deeper than 64 levels is refused with 422 before it is
    parsed."""
    ctx: AppContext = request.app.state.ctx
    refused = origin_problem(request, ctx.auth.domain)
    if refused is not None:
        raise Forbidden(refused + "; send JSON-RPC from this server's own pages or a client")
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
    problem = method_problem(payload)
    if problem is not None:
        return _rpc_error(403, -32601, problem)
    proxy: JsonRpcProxy = request.app.state.rpc_proxy
    return JSONResponse(await run_in_threadpool(proxy.handle, payload))
