"""proveBadCode: a buyer wins without a judge when a released code does not match its leaf."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from bench.world import World, demo_codes
from contracts.client import EscrowClient
from contracts.encoding import (
    Order,
    commitment,
    element_leaf,
    keystream_xor,
    leaf,
    release_digest_v2,
)
from contracts.errors import ContractRevertError
from contracts.merkle import MerkleTree


@dataclass
class Delivered:
    """A delivered order and everything its release holds."""

    oid: int
    order: Order
    key: bytes
    sealed_hash: bytes
    codes_sent: list[bytes]
    salts: list[bytes]
    element_tree: MerkleTree
    leaf_tree: MerkleTree
    committed: list[bytes]


def _deliver(
    world: World,
    *,
    quantity: int = 3,
    swap: int | None = None,
    raw: tuple[int, bytes] | None = None,
) -> Delivered:
    """List 8 codes, sell `quantity`, deliver a v2 release; `swap` replaces one code, `raw`
    (index, bytes) replaces one released ciphertext by those bytes as they are."""
    escrow = world.escrow
    lid, _ = escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**16)
    escrow.deposit_bond(world.supplier, 10**18)
    codes = demo_codes(8)
    salts = [os.urandom(32) for _ in codes]
    committed = [commitment(s, c) for s, c in zip(salts, codes, strict=True)]
    leaf_tree = MerkleTree([leaf(i, c) for i, c in enumerate(committed)])
    escrow.commit_batch(world.supplier, lid, leaf_tree.root, len(codes))
    buyer = world.buyers[0]
    oid, order, _ = escrow.buy(
        buyer, lid, quantity, max_unit_price=10**16, buyer_pubkey=keccak(b"x")
    )
    sent = list(codes[:quantity])
    if swap is not None:
        sent[swap] = b"KMG-NOT-THE-COMMITTED-CODE"
    key = os.urandom(32)
    sealed_hash = keccak(b"the sealed box bytes")
    cts = [keystream_xor(key, i, c) for i, c in enumerate(sent)]
    if raw is not None:
        cts[raw[0]] = raw[1]
    element_tree = MerkleTree([element_leaf(i, salts[i], ct) for i, ct in enumerate(cts)])
    digest = release_digest_v2(sealed_hash, element_tree.root, key)
    (order,), _ = escrow.deliver(world.delivery_key, [(oid, order, digest)])
    return Delivered(oid, order, key, sealed_hash, sent, salts, element_tree, leaf_tree, committed)


def _proof(d: Delivered, i: int, **overrides: object) -> tuple[object, ...]:
    ct = keystream_xor(d.key, i, d.codes_sent[i])
    fields: dict[str, object] = {
        "sealed_hash": d.sealed_hash,
        "key": d.key,
        "index": i,
        "salt": d.salts[i],
        "ciphertext": ct,
        "element_proof": d.element_tree.proof(i),
        "batch_index": 0,
        "committed": d.committed[i],
        "leaf_proof": d.leaf_tree.proof(i),
    }
    fields.update(overrides)
    return tuple(fields.values())


def _prove(
    escrow: EscrowClient, buyer: LocalAccount, d: Delivered, proof: tuple[object, ...]
) -> int:
    res = escrow._send(buyer, "proveBadCode", d.oid, d.order.as_tuple(), proof)
    return res.gas_used


def test_keystream_round_trips() -> None:
    key = os.urandom(32)
    code = b"X" * 70
    assert keystream_xor(key, 5, keystream_xor(key, 5, code)) == code
    assert keystream_xor(key, 6, code) != keystream_xor(key, 5, code)


def test_buyer_proves_swapped_code_and_takes_payment_and_bond(world: World) -> None:
    d = _deliver(world, swap=1)
    escrow, buyer = world.escrow, world.buyers[0]
    gas = _prove(escrow, buyer, d, _proof(d, 1))
    assert gas < 300_000
    assert escrow.order_hash(d.oid) == b"\0" * 32
    assert escrow.balance_of(buyer.address) == d.order.amount + d.order.bond
    assert escrow.balance_of(world.supplier.address) == 0
    free, reserved = escrow.bond_of(world.supplier.address)
    assert (free, reserved) == (10**18 - d.order.bond, 0)


def test_proof_of_a_matching_code_reverts_code_matches(world: World) -> None:
    d = _deliver(world, swap=1)
    with pytest.raises(ContractRevertError) as exc:
        _prove(world.escrow, world.buyers[0], d, _proof(d, 0))
    assert exc.value.name == "EscrowCodeMatches"
    assert world.escrow.order_matches(d.oid, d.order)


@pytest.mark.parametrize(
    ("override", "step"),
    [
        ({"key": b"\x01" * 32}, "element"),
        ({"sealed_hash": b"\x02" * 32}, "element"),
        ({"salt": b"\x03" * 32}, "element"),
        ({"committed": b"\x04" * 32}, "leaf"),
        ({"batch_index": 1}, "batch"),
    ],
)
def test_forged_proof_parts_are_refused(
    world: World, override: dict[str, object], step: str
) -> None:
    d = _deliver(world, swap=2)
    with pytest.raises(ContractRevertError) as exc:
        _prove(world.escrow, world.buyers[0], d, _proof(d, 2, **override))
    assert exc.value.name == "EscrowBadProof"
    assert exc.value.args_[1] == step
    assert world.escrow.order_matches(d.oid, d.order)


def test_only_the_buyer_may_prove(world: World) -> None:
    d = _deliver(world, swap=0)
    with pytest.raises(ContractRevertError) as exc:
        _prove(world.escrow, world.buyers[1], d, _proof(d, 0))
    assert exc.value.name == "EscrowWrongCaller"


def test_proof_after_dispute_window_reverts(world: World) -> None:
    d = _deliver(world, swap=0)
    world.chain.travel_to(d.order.deadline + 1)
    with pytest.raises(ContractRevertError) as exc:
        _prove(world.escrow, world.buyers[0], d, _proof(d, 0))
    assert exc.value.name == "EscrowDeadlinePassed"


def test_proof_while_disputed_resolves_the_dispute(world: World) -> None:
    d = _deliver(world, swap=0)
    escrow, buyer = world.escrow, world.buyers[0]
    disputed, _ = escrow.dispute(buyer, d.oid, d.order, "ipfs://e", keccak(b"e"))
    d.order = disputed
    _prove(escrow, buyer, d, _proof(d, 0))
    assert escrow.balance_of(buyer.address) == d.order.amount + d.order.bond


def _deliver_with(world: World, element: bytes) -> Delivered:
    """A 2-code order whose second released element is `element` (a ciphertext as sent)."""
    return _deliver(world, quantity=2, raw=(1, element))


@pytest.mark.parametrize(
    "element", [b"", b"\x01" * 257, b"\x02" * 4096], ids=["empty", "257", "4k"]
)
def test_an_element_of_impossible_length_is_provably_bad(world: World, element: bytes) -> None:
    """Audit finding 9: a supplier cannot make proveBadCode impossible with ciphertexts that are
    empty or longer than 256 bytes (proveBadCode used to refuse them as a bad argument). A
    commitment binds a code of 1 to 256 bytes, so such an element is proven bad by its length."""
    d = _deliver_with(world, element)
    escrow, buyer = world.escrow, world.buyers[0]
    proof = _proof(d, 1, ciphertext=element)
    res = escrow._send(buyer, "proveBadCode", d.oid, d.order.as_tuple(), proof)
    ruled = res.event("DisputeRuled").args
    assert ruled["reason"].rstrip(b"\0") == b"bad-length-proven"
    assert ruled["bundleHash"] == keccak((1).to_bytes(32, "big") + keccak(element))
    assert escrow.order_hash(d.oid) == b"\0" * 32
    assert escrow.balance_of(buyer.address) >= d.order.amount + d.order.bond


def test_an_impossible_length_still_needs_the_element_in_the_release(world: World) -> None:
    """Audit finding 9: the length rule does not let a buyer skip the proof that the element is
    part of the digest the supplier posted."""
    d = _deliver_with(world, b"\x01" * 300)
    with pytest.raises(ContractRevertError) as exc:
        _prove(world.escrow, world.buyers[0], d, _proof(d, 1, ciphertext=b"\x01" * 301))
    assert exc.value.name == "EscrowBadProof"
    assert world.escrow.order_matches(d.oid, d.order)
