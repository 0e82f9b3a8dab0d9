"""Where the indexer reads the chain: a node over HTTP JSON-RPC, or the embedded eth-tester chain.

Both speak the same small interface (`Source`): the chain id, the head, one block header, and
`eth_getLogs` over a block range, returning logs as JSON-RPC dicts (hex strings). Errors come
out classified, so the fetcher knows what to do with them:

- `TransientRpcError`: timeouts, dropped connections, HTTP 429 and 5xx, rate limits, a node
  that does not have a block yet. Retried with backoff.
- `RangeTooLargeError`: "too many results" and response-size errors, with the provider's
  suggested range when it names one (Infura: ``query returned more than 10000 results. Try
  with this block range [0x.., 0x..]``; Alchemy: ``this block range should work: [0x.., 0x..]``).
  The range is split.
- `RpcError`: anything else.

The HTTP source goes through web3's `HTTPProvider.make_request` with web3's own retries turned
off (they cover connection errors only, and would hide the faults from the backoff here).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import requests
from web3 import HTTPProvider

from contracts.chain import log_filter, tester_logs
from indexer.errors import RangeTooLargeError, RpcError, TransientRpcError

if TYPE_CHECKING:
    from web3 import Web3

    from contracts.chain import Chain


@dataclass(frozen=True)
class Header:
    """The parts of a block header the indexer keeps."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int


class Source(Protocol):
    """What the indexer needs from a chain."""

    #: How many `eth_getLogs` requests may run at once (1 for a source that is not thread-safe).
    max_concurrency: int
    #: The first and the largest block range to ask `eth_getLogs` for.
    initial_range: int
    max_range: int
    #: A short name for messages ("http://127.0.0.1:8545", "embedded").
    name: str

    def chain_id(self) -> int:
        """The chain id."""
        ...

    def head(self) -> int:
        """The number of the newest block."""
        ...

    def header(self, number: int) -> Header | None:
        """The header of block `number`, or None when the chain has no such block (yet)."""
        ...

    def latest(self) -> Header:
        """The header of the newest block."""
        ...

    def logs(self, from_block: int, to_block: int, address: str) -> list[dict[str, Any]]:
        """`eth_getLogs` of `address` over ``[from_block, to_block]``, as JSON-RPC dicts."""
        ...


# ---------------------------------------------------------------- error classification

_RANGE_PATTERNS = (
    "query returned more than",
    "too many results",
    "exceeds max results",
    "max results",
    "response size",
    "response is too big",
    "block range",
    "range too large",
    "range is too large",
    "too large",
    "logs are limited",
    "are limited to",
    "log response size exceeded",
    "query timeout exceeded",
)
_TRANSIENT_PATTERNS = (
    "rate limit",
    "too many requests",
    "timeout",
    "timed out",
    "header not found",
    "unknown block",
    "busy",
    "try again",
    "temporarily",
    "capacity",
    "unavailable",
    "request count exceeded",
)
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]")


def _number(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def suggested_range(message: str) -> tuple[int, int] | None:
    """The block range a provider suggests in an error message, if it names one.

    Args:
        message: The error message, for example ``query returned more than 10000 results. Try
            with this block range [0x10, 0x1f].``

    Returns:
        The suggested ``(from, to)``, or None.
    """
    match = _SUGGESTED.search(message)
    if match is None:
        return None
    start, end = _number(match.group(1)), _number(match.group(2))
    return (start, end) if start <= end else None


def classify_rpc_error(method: str, error: Any) -> RpcError:
    """Turn a JSON-RPC error object into the indexer's error for it.

    Args:
        method: The method that failed.
        error: The ``error`` member of the response (a dict with ``code`` and ``message``).

    Returns:
        A `RangeTooLargeError`, a `TransientRpcError` or a plain `RpcError`.
    """
    if isinstance(error, dict):
        code = error.get("code")
        message = str(error.get("message", ""))
        data = error.get("data")
        if isinstance(data, str):
            message = f"{message} {data}"
    else:
        code, message = None, str(error)
    lowered = message.lower()
    text = f"{method} failed: {message} (code {code})"
    if code == 429 or "rate limit" in lowered or "too many requests" in lowered:
        return TransientRpcError(text)
    if method == "eth_getLogs" and any(p in lowered for p in _RANGE_PATTERNS):
        suggested = suggested_range(message)
        return RangeTooLargeError(text, suggested[1] if suggested else None)
    if any(p in lowered for p in _TRANSIENT_PATTERNS) or code in (-32005, 429):
        return TransientRpcError(text)
    if code == -32603 or (isinstance(code, int) and -32099 <= code <= -32000):
        # Internal and server errors: most are a node having a bad moment.
        return TransientRpcError(text)
    return RpcError(text)


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# ---------------------------------------------------------------- HTTP


def _hex_header(raw: dict[str, Any]) -> Header:
    return Header(
        number=int(raw["number"], 16),
        hash=str(raw["hash"]).lower(),
        parent_hash=str(raw["parentHash"]).lower(),
        timestamp=int(raw["timestamp"], 16),
    )


class HttpSource:
    """A node over HTTP JSON-RPC, through web3's `HTTPProvider.make_request`."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        max_concurrency: int = 4,
        initial_range: int = 10,
        max_range: int = 50_000,
    ) -> None:
        """Prepare a source; no request is made yet.

        Args:
            url: The node's HTTP URL.
            timeout: Seconds before a request counts as timed out (and is retried).
            max_concurrency: How many `eth_getLogs` requests may be in flight at once.
            initial_range: The first `eth_getLogs` block range; it adapts from there.
            max_range: The largest block range asked for.
        """
        self.url = url
        self.name = url
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.initial_range = initial_range
        self.max_range = max_range
        self.provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        self._chain_id: int | None = None
        self._lock = threading.Lock()

    def request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call; returns its result.

        Raises:
            TransientRpcError: a timeout, a connection error, HTTP 429/5xx, a transient node error.
            RangeTooLargeError: `eth_getLogs` was refused as too large.
            RpcError: any other error.
        """
        try:
            response = self.provider.make_request(method, params)  # type: ignore[arg-type,unused-ignore]
        except requests.Timeout as exc:
            raise TransientRpcError(
                f"{method} timed out after {self.timeout} s at {self.url}"
            ) from exc
        except requests.ConnectionError as exc:
            raise TransientRpcError(f"{method}: cannot reach {self.url}: {exc}") from exc
        except requests.HTTPError as exc:
            raise self._http_error(method, exc) from exc
        except ValueError as exc:  # a body that is not JSON (truncated, an HTML error page)
            raise TransientRpcError(
                f"{method}: unreadable response from {self.url}: {exc}"
            ) from exc
        if "error" in response:
            raise classify_rpc_error(method, response["error"])
        return response.get("result")

    def _http_error(self, method: str, exc: requests.HTTPError) -> RpcError:
        response = exc.response
        status = response.status_code if response is not None else 0
        body = ""
        if response is not None:
            try:
                body = response.text[:500]
            except (UnicodeDecodeError, requests.RequestException):
                body = ""
        if status == 429 or status >= 500 or status == 408:
            return TransientRpcError(
                f"{method}: HTTP {status} from {self.url}: {body}",
                retry_after=_retry_after(response),
            )
        if status == 413:
            return RangeTooLargeError(f"{method}: HTTP 413 (response too large) from {self.url}")
        if response is not None:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            if isinstance(payload, dict) and "error" in payload:
                return classify_rpc_error(method, payload["error"])
        return RpcError(f"{method}: HTTP {status} from {self.url}: {body}")

    def chain_id(self) -> int:
        """The chain id (asked once)."""
        if self._chain_id is None:
            self._chain_id = int(self.request("eth_chainId", []), 16)
        return self._chain_id

    def head(self) -> int:
        """The newest block's number."""
        return int(self.request("eth_blockNumber", []), 16)

    def header(self, number: int) -> Header | None:
        """A block header by number, None if the node has no such block."""
        raw = self.request("eth_getBlockByNumber", [hex(number), False])
        return None if raw is None else _hex_header(raw)

    def latest(self) -> Header:
        """The newest block's header.

        Raises:
            TransientRpcError: the node returned no block.
        """
        raw = self.request("eth_getBlockByNumber", ["latest", False])
        if raw is None:
            raise TransientRpcError("eth_getBlockByNumber(latest) returned nothing")
        return _hex_header(raw)

    def logs(self, from_block: int, to_block: int, address: str) -> list[dict[str, Any]]:
        """`eth_getLogs` for one contract over a closed block range."""
        result = self.request("eth_getLogs", [log_filter(address, from_block, to_block)])
        return list(result or [])


# ---------------------------------------------------------------- embedded


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


class TesterSource:
    """The in-process eth-tester chain (py-evm), through web3.

    eth-tester is not thread-safe and its `get_logs` walks every receipt of every block in the
    range, so this source asks for small ranges, one at a time, from the caller's thread.
    """

    def __init__(self, w3: Web3, *, max_range: int = 10) -> None:
        """Wrap a web3 connected to an `EthereumTesterProvider`.

        Args:
            w3: The web3.
            max_range: The largest `eth_getLogs` block range (small: see the class note).
        """
        self.w3 = w3
        self.name = "embedded"
        self.max_concurrency = 1
        self.initial_range = max_range
        self.max_range = max_range

    def chain_id(self) -> int:
        """The chain id."""
        return int(self.w3.eth.chain_id)

    def head(self) -> int:
        """The newest block's number."""
        return int(self.w3.eth.block_number)

    def _header(self, block: Any) -> Header:
        return Header(
            number=int(block["number"]),
            hash=_hex(block["hash"]),
            parent_hash=_hex(block["parentHash"]),
            timestamp=int(block["timestamp"]),
        )

    def header(self, number: int) -> Header | None:
        """A block header by number, None past the head."""
        if number > self.head():
            return None
        return self._header(self.w3.eth.get_block(number))

    def latest(self) -> Header:
        """The newest block's header."""
        return self._header(self.w3.eth.get_block("latest"))

    def logs(self, from_block: int, to_block: int, address: str) -> list[dict[str, Any]]:
        """The contract's logs over a closed block range, shaped like JSON-RPC's."""
        return tester_logs(self.w3, address, from_block, to_block)


def source_for(chain_or_url: Chain | str | Source, **kwargs: Any) -> Source:
    """The source for a `Chain`, a node URL, or a ready `Source`.

    Args:
        chain_or_url: An embedded or RPC `Chain`, an ``http(s)://`` URL, or a `Source`.
        **kwargs: Passed to `HttpSource` for URLs and RPC chains.

    Returns:
        The source.

    Raises:
        RpcError: a chain of a kind the indexer cannot read.
    """
    if isinstance(chain_or_url, str):
        return HttpSource(chain_or_url, **kwargs)
    kind = getattr(chain_or_url, "kind", None)
    if kind == "embedded":
        return TesterSource(chain_or_url.w3)  # type: ignore[union-attr]
    if kind == "rpc":
        url = chain_or_url.rpc_url  # type: ignore[union-attr]
        if not url:
            raise RpcError("an RPC chain without a URL cannot be indexed")
        return HttpSource(url, **kwargs)
    if hasattr(chain_or_url, "logs") and hasattr(chain_or_url, "header"):
        return chain_or_url  # type: ignore[return-value]
    raise RpcError(f"cannot index {chain_or_url!r}: pass a Chain, a node URL or a Source")
