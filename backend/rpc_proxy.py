"""Standard Ethereum JSON-RPC in front of the embedded eth-tester chain.

eth-tester speaks Python (ints, snake_case keys) through `EthereumTesterProvider.make_request`;
web3 converts on the way in and out with its eth-tester middleware. `JsonRpcProxy` applies the
same conversions and then writes every number as a hex quantity, so that any client (web3.py's
`HTTPProvider`, viem, ethers, curl) can use the in-process chain of `kameng serve` like a node.

The tester is not thread-safe: `serialize_provider` puts one lock around its `make_request`,
which every user in the process (API threads, indexer, delivery agent, this proxy) goes through.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from web3.providers.eth_tester import middleware as tester_mw

from contracts.client import _revert_data

if TYPE_CHECKING:
    from collections.abc import Callable

    from contracts.chain import Chain

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
_CAMEL = re.compile(r"_([a-z0-9])")
_TX_KEYS = dict(tester_mw.TRANSACTION_RESULT_KEY_MAPPING)


def serialize_provider(chain: Chain) -> threading.RLock:
    """Make every request to an embedded chain's provider take one lock; return the lock.

    Idempotent: a chain already serialized keeps its lock.
    """
    provider: Any = chain.w3.provider
    existing = getattr(provider, "_kameng_lock", None)
    if isinstance(existing, type(threading.RLock())):
        return existing
    lock = threading.RLock()
    raw: Callable[[Any, Any], Any] = provider.make_request

    def make_request(method: Any, params: Any) -> Any:
        with lock:
            return raw(method, params)

    provider.make_request = make_request
    provider._kameng_lock = lock
    # web3 caches the middleware chain built around the old bound method; rebuild it.
    if hasattr(provider, "_request_func_cache"):
        provider._request_func_cache = (None, None)
    return lock


def _camel(key: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), key)


def to_wire(value: Any) -> Any:
    """Python values to JSON-RPC wire form: ints as hex quantities, bytes as hex, camelCase keys."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {_camel(str(k)): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


class JsonRpcProxy:
    """Answers JSON-RPC request objects against an embedded chain."""

    def __init__(self, chain: Chain) -> None:
        """Bind to an embedded chain (and serialize its provider)."""
        self.chain = chain
        self.provider: Any = chain.w3.provider
        self._from: str | None = None
        serialize_provider(chain)

    def handle(self, request: Any) -> Any:
        """Answer one request object, or a list of them (a batch)."""
        if isinstance(request, list):
            if not request:
                return _error(None, -32600, "empty batch")
            return [self.handle_one(r) for r in request]
        return self.handle_one(request)

    def handle_one(self, request: Any) -> dict[str, Any]:
        """Answer one request object."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, -32600, "invalid request: expected an object with a method")
        rid = request.get("id")
        method: str = request["method"]
        params = request.get("params") or []
        if not isinstance(params, list):
            return _error(rid, -32602, "params must be an array")
        try:
            params = self._format_params(method, params)
            response = self.provider.make_request(method, params)
        except Exception as exc:  # the tester raises many types; all become JSON-RPC errors
            return self._exception(rid, exc)
        if "error" in response:
            err = response["error"]
            if isinstance(err, dict):
                return {"jsonrpc": "2.0", "id": rid, "error": err}
            return _error(rid, -32000, str(err))
        result = response.get("result")
        formatter = (tester_mw.result_formatters or {}).get(method)  # type: ignore[call-overload]
        if formatter is not None:
            result = formatter(result)
        if method in ("eth_getBlockByNumber", "eth_getBlockByHash") and isinstance(result, dict):
            txs = result.get("transactions")
            if isinstance(txs, list):
                result["transactions"] = [
                    {_TX_KEYS.get(k, k): v for k, v in t.items()} if isinstance(t, dict) else t
                    for t in txs
                ]
        if method in ("eth_getTransactionByHash",) and isinstance(result, dict):
            result = {_TX_KEYS.get(k, k): v for k, v in result.items()}
        if method in ("net_version", "web3_clientVersion"):
            return {"jsonrpc": "2.0", "id": rid, "result": result}
        return {"jsonrpc": "2.0", "id": rid, "result": to_wire(result)}

    def _format_params(self, method: str, params: list[Any]) -> list[Any]:
        if method in ("eth_call", "eth_estimateGas", "eth_createAccessList") and params:
            tx = dict(params[0]) if isinstance(params[0], dict) else params[0]
            if isinstance(tx, dict) and not tx.get("from"):
                # As web3's eth-tester middleware does: a funded account, since the tester
                # checks that the sender can afford the call's gas.
                tx["from"] = self._default_from()
            params = [tx, *params[1:]]
            if method == "eth_estimateGas" and len(params) == 1:
                params.append("latest")
        formatter = tester_mw.request_formatters.get(method)  # type: ignore[call-overload]
        if formatter is not None:
            params = list(formatter(params))
        return params

    def _default_from(self) -> str:
        if self._from is None:
            accounts = self.provider.make_request("eth_accounts", []).get("result") or []
            self._from = str(accounts[0]) if accounts else ZERO_ADDRESS
        return self._from

    def _exception(self, rid: Any, exc: Exception) -> dict[str, Any]:
        data = _revert_data(exc)
        name = type(exc).__name__
        if data is not None or name == "TransactionFailed":
            err: dict[str, Any] = {"code": 3, "message": "execution reverted"}
            if data is not None:
                err["data"] = "0x" + data.hex()
            return {"jsonrpc": "2.0", "id": rid, "error": err}
        if name in ("TransactionNotFound", "BlockNotFound"):
            return {"jsonrpc": "2.0", "id": rid, "result": None}
        if name in ("ValidationError", "TypeError", "ValueError"):
            return _error(rid, -32602, f"invalid params: {exc}")
        if isinstance(exc, NotImplementedError):
            return _error(rid, -32601, f"method not supported by the embedded chain: {exc}")
        return _error(rid, -32000, f"{name}: {exc}")


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
