"""The embedded chain finds mined transactions through py-evm's hash index
(`contracts.chain._install_indexed_tx_lookup`), and mining takes the provider's lock."""

from __future__ import annotations

import threading

import pytest
from web3.exceptions import TransactionNotFound

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
