"""Chain helpers of the backend's services: what counts as the node being unreachable, the
per-sender signing lock, calldata encoding, receipts and a listing's fields. Logs are read
with `contracts.chain.get_logs` (`EscrowClient.logs`).

Every transaction the backend sends goes through the chain gateway (`backend.gateway`), which
owns nonces and signing and uses the helpers here; nothing here sends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import requests
from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.exceptions import (
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TransactionNotFound,
)

from backend.errors import ChainUnavailable
from contracts.artifacts import load
from contracts.layout import abi_type

if TYPE_CHECKING:
    from web3 import Web3

    from contracts.client import EscrowClient

#: Exceptions that mean "the node is not there", as opposed to "the node said no".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ProviderConnectionError,
    RequestTimedOut,
    ConnectionError,
    TimeoutError,
)


_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def account_lock(address: str) -> threading.RLock:
    """A process-wide lock for signing with one account, so that two threads never take the
    same nonce (re-entrant: recovery inside an upload takes it again)."""
    with _locks_guard:
        return _locks.setdefault(address.lower(), threading.RLock())


@contextlib.contextmanager
def rpc_guard(what: str) -> Iterator[None]:
    """Turn "the node did not answer" into `ChainUnavailable` with a retry hint.

    Args:
        what: What was being done, for the message.

    Raises:
        ChainUnavailable: a connection error or timeout happened inside the block.
    """
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise ChainUnavailable(
            f"the RPC node did not answer while {what} ({type(exc).__name__}); "
            "check the node and retry in a few seconds",
            retry_after=5,
        ) from exc


@cache
def _function_plan(fn: str) -> tuple[bytes, tuple[str, ...]]:
    """Selector and argument types of an escrow function, computed once."""
    for item in load("CodeEscrow").abi:
        if item["type"] == "function" and item["name"] == fn:
            types = tuple(abi_type(p) for p in item["inputs"])
            return keccak(text=f"{fn}({','.join(types)})")[:4], types
    raise KeyError(f"CodeEscrow has no function {fn}")


def encode_call(fn: str, args: Sequence[Any]) -> bytes:
    """Calldata of an escrow call, encoded with `eth_abi` directly (web3's contract layer
    spends most of a large ``deliver``'s signing time formatting its arguments)."""
    selector, types = _function_plan(fn)
    return selector + abi_encode(types, list(args))


def receipt_or_none(w3: Web3, tx_hash: str) -> dict[str, Any] | None:
    """The receipt of a transaction, or None while it is not mined (or unknown)."""
    try:
        return dict(w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
    except TransactionNotFound:
        return None


def is_known(w3: Web3, tx_hash: str) -> bool:
    """Whether the node knows the transaction (mined or waiting in its pool)."""
    try:
        w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return False
    return True


def wait_receipt(w3: Web3, tx_hash: str, timeout: float) -> dict[str, Any] | None:
    """Wait up to `timeout` seconds for a receipt; None if it did not come.

    Raises:
        ChainUnavailable: the node did not answer.
    """
    with rpc_guard("waiting for a receipt"):
        try:
            return dict(
                w3.eth.wait_for_transaction_receipt(
                    tx_hash,  # type: ignore[arg-type]
                    timeout=timeout,
                    poll_latency=0.05,
                )
            )
        except TimeExhausted:
            return None


@dataclass(frozen=True)
class ListingView:
    """The parts of an on-chain listing the backend needs."""

    supplier: str
    committed: int
    sold: int
    active: bool
    batch_count: int
    #: 0 while the listing delivers off-chain; else (first code index that must be delivered
    #: on-chain) + 1 (`requireOnChainRelease`).
    on_chain_from: int = 0

    @property
    def exists(self) -> bool:
        """Whether the listing exists (its supplier is nonzero)."""
        return int(self.supplier, 16) != 0


def read_listing(escrow: EscrowClient, listing_id: int) -> ListingView:
    """Read a listing from the escrow's storage (`contracts.storage.EscrowStorage.listing`)."""
    fields = escrow.listing(listing_id)
    return ListingView(
        supplier=str(fields["supplier"]),
        committed=int(fields["committed"]),
        sold=int(fields["sold"]),
        active=bool(fields["active"]),
        batch_count=int(fields["batch_count"]),
        on_chain_from=int(fields["on_chain_from"]),
    )
