"""Buyer keys: derived from a wallet signature, the same every time, recoverable from the chain."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from backend.errors import KeyDerivationError
from backend.keys import (
    derive_order_key,
    next_order_key,
    order_key_from_signature,
    order_key_message,
    public_key_bytes,
    recover_order_key,
)
from bench.world import World, open_listing

ESCROW = "0x" + "ab" * 20


def test_message_names_chain_escrow_buyer_and_nonce() -> None:
    buyer = Account.create()
    text = order_key_message(chain_id=31337, escrow=ESCROW, buyer=buyer.address, nonce=7)
    assert "Chain ID: 31337" in text and f"Buyer: {buyer.address}" in text
    assert "Order nonce: 7" in text and "Escrow: 0xABaBaBaBABab" in text  # checksummed


def test_key_is_deterministic_and_bound_to_every_field() -> None:
    buyer = Account.create()
    base = {"chain_id": 1, "escrow": ESCROW, "nonce": 3}
    key = bytes(derive_order_key(buyer, **base))  # type: ignore[arg-type]
    assert key == bytes(derive_order_key(buyer, **base))  # type: ignore[arg-type]
    variants = [
        {**base, "chain_id": 2},
        {**base, "escrow": "0x" + "cd" * 20},
        {**base, "nonce": 4},
    ]
    for v in variants:
        assert bytes(derive_order_key(buyer, **v)) != key  # type: ignore[arg-type]
    assert bytes(derive_order_key(Account.create(), **base)) != key  # type: ignore[arg-type]


def test_wallets_returning_v_as_0_or_1_give_the_same_key() -> None:
    buyer = Account.create()
    message = order_key_message(chain_id=1, escrow=ESCROW, buyer=buyer.address, nonce=0)
    sig = bytes(buyer.sign_message(encode_defunct(text=message)).signature)
    low_v = sig[:64] + bytes([sig[64] - 27])
    assert bytes(order_key_from_signature(sig)) == bytes(order_key_from_signature(low_v))
    with pytest.raises(KeyDerivationError):
        order_key_from_signature(sig[:64])


def test_buyer_recovers_the_key_of_a_past_order_from_the_chain(world: World) -> None:
    lid = open_listing(world, stock=5)
    buyer = world.buyers[0]
    key, nonce = next_order_key(world.escrow, buyer)
    oid, _, res = world.escrow.buy(
        buyer, lid, 2, max_unit_price=10**16, buyer_pubkey=public_key_bytes(key)
    )
    assert world.escrow.w3.eth.get_transaction(res.tx_hash)["nonce"] == nonce  # type: ignore[arg-type]
    world.escrow.buy(
        buyer, lid, 1, max_unit_price=10**16, buyer_pubkey=public_key_bytes(key)
    )  # later activity does not matter
    assert bytes(recover_order_key(world.escrow, buyer, oid)) == bytes(key)


def test_recovery_refuses_a_key_made_for_another_nonce(world: World) -> None:
    lid = open_listing(world, stock=5)
    buyer = world.buyers[0]
    key, nonce = next_order_key(world.escrow, buyer)
    stale = derive_order_key(
        buyer, chain_id=world.chain.chain_id, escrow=world.escrow.address, nonce=nonce + 5
    )
    oid, _, _ = world.escrow.buy(
        buyer, lid, 1, max_unit_price=10**16, buyer_pubkey=public_key_bytes(stale)
    )
    with pytest.raises(KeyDerivationError, match="not derived from nonce"):
        recover_order_key(world.escrow, buyer, oid)
    with pytest.raises(KeyDerivationError, match="another account"):
        recover_order_key(world.escrow, world.buyers[1], oid)
    with pytest.raises(KeyDerivationError, match="no OrderPaid"):
        recover_order_key(world.escrow, buyer, oid + 1000)
    del key
