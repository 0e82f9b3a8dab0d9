"""The embedded chain finds mined transactions through py-evm's hash index
(`contracts.chain._install_indexed_tx_lookup`), and mining takes the provider's lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from web3.exceptions import TransactionNotFound
from web3.method import Method

from backend.rpc_proxy import serialize_provider
from contracts.chain import embedded_chain


def test_receipts_are_found_by_index_and_unknown_hashes_are_refused() -> None:
    chain = embedded_chain()
    w3 = chain.w3
    a, b = w3.eth.accounts[:2]
    first = w3.eth.send_transaction({"from": a, "to": b, "value": 1, "gas": 21_000})
    second = w3.eth.send_transaction({"from": a, "to": b, "value": 2, "gas": 21_000})
    chain.mine(50)
    for tx_hash, block, value in ((first, 1, 1), (second, 2, 2)):
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        assert (receipt["blockNumber"], receipt["transactionHash"]) == (block, tx_hash)
        tx = w3.eth.get_transaction(tx_hash)
        assert (tx["blockNumber"], tx["value"]) == (block, value)
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt("0x" + "11" * 32)
    # After a revert the reverted transaction is gone and a new one is found where it is.
    snap = chain.snapshot()
    third = w3.eth.send_transaction({"from": a, "to": b, "value": 3, "gas": 21_000})
    chain.revert(snap)
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(third)
    fourth = w3.eth.send_transaction({"from": a, "to": b, "value": 4, "gas": 21_000})
    assert w3.eth.get_transaction(fourth)["value"] == 4


def test_mining_waits_for_a_request_holding_the_provider_lock() -> None:
    chain = embedded_chain()
    lock = serialize_provider(chain)
    head = chain.w3.eth.block_number
    done = threading.Event()
    with lock:  # a worker's request in progress
        miner = threading.Thread(target=lambda: (chain.mine(1), done.set()))
        miner.start()
        assert not done.wait(0.3)  # blocked on the lock, not racing the request
        assert chain.w3.eth.block_number == head  # the lock is re-entrant for this thread
    miner.join(10)
    assert done.is_set() and chain.w3.eth.block_number == head + 1


def test_a_block_by_hash_is_not_turned_into_another_threads_block_by_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """web3's `get_block` is one `Method` object shared by every thread (and every Web3): it
    stores the JSON-RPC method it picks from the identifier (`eth_getBlockByHash` for a hash,
    `eth_getBlockByNumber` for a number or a tag) on itself, then reads it back. Another thread
    picking in between made a hash go out as a block number ("no block" for a block that is
    there: the evidence bundle's CI flake, a 500), or a tag as a hash (the indexer died of
    "when sending a str, it must be a hex string. Got: 'latest'"). The interleaving is forced
    here: the other thread's `get_block("latest")` runs between this thread's pick and read."""
    chain = embedded_chain()
    serialize_provider(chain)
    w3 = chain.w3
    chain.mine(3)
    wanted = w3.eth.get_block(2)
    by_hash = "0x" + bytes(wanted["hash"]).hex()
    picker = Method.method_selector_fn
    me = threading.get_ident()
    other: dict[str, object] = {}
    forced = threading.Event()

    def latest() -> None:
        try:
            other["latest"] = w3.eth.get_block("latest")["number"]
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            other["latest"] = exc

    def selector(self: Method[Any]) -> Any:
        if threading.get_ident() == me and not forced.is_set():
            forced.set()
            racer = threading.Thread(target=latest)
            racer.start()
            # Unfixed, the other thread's pick lands now; fixed, it waits for this one.
            racer.join(1.0)
        return picker.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(Method, "method_selector_fn", property(selector))
    got = w3.eth.get_block(by_hash)
    assert forced.is_set()
    assert (got["number"], got["hash"]) == (2, wanted["hash"])
    monkeypatch.undo()
    deadline = time.monotonic() + 10
    while "latest" not in other and time.monotonic() < deadline:
        time.sleep(0.01)  # the other thread finishes once this one let go of the pick
    assert other.get("latest") == w3.eth.block_number
