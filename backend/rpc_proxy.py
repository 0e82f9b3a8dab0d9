"""Standard Ethereum JSON-RPC in front of the embedded eth-tester chain.

eth-tester speaks Python (ints, snake_case keys) through `EthereumTesterProvider.make_request`;
web3 converts on the way in and out with its eth-tester middleware. `JsonRpcProxy` applies the
same conversions and then writes every number as a hex quantity, so that any client (web3.py's
`HTTPProvider`, viem, ethers, Foundry's cast, curl) can use the in-process chain of
`kameng serve` like a node. A transaction object's call data may be named `input` (the execution
API specification's name, which cast sends) or `data` (what ethers and web3 send).

The tester is not thread-safe: `serialize_provider` puts one lock around its `make_request`,
which every user in the process (API threads, indexer, delivery agent, this proxy) goes through.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from eth_utils import keccak
from web3.providers.eth_tester import middleware as tester_mw

from contracts.client import _revert_data

if TYPE_CHECKING:
    from collections.abc import Callable

    from contracts.chain import Chain

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
#: Methods whose first parameter is a transaction object (the execution API's
#: `GenericTransaction`), which names its call data `input` (older clients send `data`).
TX_OBJECT_METHODS = (
    "eth_call",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_sendTransaction",
    "eth_signTransaction",
)
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
        """Bind to an embedded chain (and serialize its provider).

        Under the `kameng serve` supervisor the API worker builds one around its RPC connection
        to the supervisor's chain, then puts `backend.internal_rpc.ForwardingRpcProxy` in its
        place; an HTTP provider is left unserialized.
        """
        self.chain = chain
        self.provider: Any = chain.w3.provider
        self._from: str | None = None
        if chain.kind == "embedded":
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
            for key in ("logs_bloom", "logsBloom"):
                if isinstance(result.get(key), int):
                    # The tester keeps the bloom as an integer; on the wire it is 256 bytes.
                    result[key] = result[key].to_bytes(256, "big")
            txs = result.get("transactions")
            if isinstance(txs, list):
                result["transactions"] = [
                    {_TX_KEYS.get(k, k): v for k, v in t.items()} if isinstance(t, dict) else t
                    for t in txs
                ]
        if method in ("eth_getTransactionByHash",) and isinstance(result, dict):
            result = {_TX_KEYS.get(k, k): v for k, v in result.items()}
        if method == "eth_getTransactionReceipt" and isinstance(result, dict):
            # The tester leaves out the receipt's bloom, which clients such as cast require.
            result.setdefault("logsBloom", logs_bloom(result.get("logs") or []))
        if method in ("net_version", "web3_clientVersion"):
            return {"jsonrpc": "2.0", "id": rid, "result": result}
        return {"jsonrpc": "2.0", "id": rid, "result": to_wire(result)}

    def _format_params(self, method: str, params: list[Any]) -> list[Any]:
        if method in TX_OBJECT_METHODS and params and isinstance(params[0], dict):
            params = [call_data_as_data(params[0]), *params[1:]]
        if method in ("eth_call", "eth_estimateGas", "eth_createAccessList") and params:
            tx = dict(params[0]) if isinstance(params[0], dict) else params[0]
            if isinstance(tx, dict) and _no_sender(tx.get("from")):
                # As web3's eth-tester middleware does: a funded account, since the tester
                # checks that the sender can afford the call's gas. A node reads a missing
                # `from` as the zero address, which is what cast sends: both get this account.
                tx["from"] = self._default_from()
            params = [tx, *params[1:]]
            if method == "eth_estimateGas" and len(params) == 1:
                params.append("latest")
            if len(params) > 1 and params[1] == "pending":
                # The tester has no pending block; it mines every transaction at once, so the
                # pending state is the latest one (cast estimates gas against "pending").
                params[1] = "latest"
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


def call_data_as_data(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction object with its call data under `data`, the key eth-tester knows.

    The execution API specification names the call data `input` (Foundry's cast sends it);
    ethers and web3 send `data`. Both are accepted, as by geth: when both are given they must
    be the same bytes.

    Raises:
        ValueError: `input` and `data` are both given and differ (answered -32602).
    """
    out = {k: v for k, v in tx.items() if k != "input"}
    given = tx.get("input")
    if given is None:
        return out
    data = out.get("data")
    if data is not None and _hex_key(data) != _hex_key(given):
        raise ValueError(
            "the transaction has both `input` and `data` and they differ; send the call data "
            "once, in `input` (the specification's name) or `data`"
        )
    out["data"] = given
    return out


def logs_bloom(logs: list[Any]) -> bytes:
    """The 2048-bit bloom filter of a receipt's logs, as 256 bytes.

    Yellow paper, 4.3.1: each log's address and each of its topics sets three bits, taken from
    the first three pairs of bytes of its keccak-256, 11 bits each.
    """
    bloom = 0
    for log in logs:
        for item in (log["address"], *log["topics"]):
            digest = keccak(_raw(item))
            for i in (0, 2, 4):
                bloom |= 1 << (int.from_bytes(digest[i : i + 2], "big") & 2047)
    return bloom.to_bytes(256, "big")


def _raw(value: Any) -> bytes:
    """Bytes from bytes or 0x-hex."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def _no_sender(value: Any) -> bool:
    """Whether a call's `from` is missing or the zero address."""
    if not value:
        return True
    return isinstance(value, str) and value.lower() == ZERO_ADDRESS


def _hex_key(value: Any) -> Any:
    """A hex string compared case-insensitively, with or without 0x; anything else as is."""
    if isinstance(value, str):
        return value.lower().removeprefix("0x")
    return value


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
