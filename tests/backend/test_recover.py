"""`backend.recover` on the embedded chain: a buyer gets back every code of every order
delivered on-chain from the chain alone, real releases sealed by `seal_release` and published
with `deliverOnChain`; an order delivered off-chain, one not delivered, and releases that do not
open or whose proofs do not hold are each reported as such without stopping the others."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from eth_account.signers.local import LocalAccount
from nacl.public import PrivateKey

from backend.keys import next_order_key, public_key_bytes
from backend.recover import NoEscrowError, OrderRecovery, recover
from backend.release import CodeToSeal, published_from_manifest, seal_release
from bench.world import World, commit_codes, demo_codes, make_world, open_listing
from contracts.chain import embedded_chain
from contracts.client import EscrowClient, deploy_contract
from contracts.encoding import (
    Order,
    PublishedRelease,
    commitment,
    decode_release_proofs,
    encode_release_proofs,
    split_order_id,
)
from contracts.merkle import MerkleTree

PRICE = 10**15


@dataclass
class Stock:
    """A listing's codes, committed as two batches: by index, its salt and its batch."""

    listing_id: int
    codes: list[bytes]
    salts: list[bytes]
    trees: list[tuple[int, MerkleTree]]  # (first index, tree) per batch

    def to_seal(self, oid: int, quantity: int) -> list[CodeToSeal]:
        _, first = split_order_id(oid)
        out = []
        for i in range(first, first + quantity):
            b = next(n for n, (start, t) in enumerate(self.trees) if i < start + len(t.layers[0]))
            start, tree = self.trees[b]
            out.append(
                CodeToSeal(
                    i,
                    self.codes[i],
                    self.salts[i],
                    commitment(self.salts[i], self.codes[i]),
                    b,
                    tree.root,
                    tree.proof(i - start),
                    1_900_000_000,
                )
            )
        return out


@dataclass
class Scene:
    """A world where one buyer holds orders in every state `recover` reports."""

    world: World
    stock: Stock
    buyer: LocalAccount
    orders: dict[str, int]


#: The X25519 public key each order was paid with, by order id.
PUBKEYS: dict[int, bytes] = {}


def _buy(world: World, buyer: LocalAccount, listing: int, quantity: int) -> tuple[int, Order]:
    """Pay as the web and the CLI do: a key derived from the wallet for the buy's nonce."""
    key, _ = next_order_key(world.escrow, buyer)
    world.escrow.tx.reset_nonce(buyer.address)
    oid, order, _ = world.escrow.buy(
        buyer, listing, quantity, max_unit_price=PRICE, buyer_pubkey=public_key_bytes(key)
    )
    PUBKEYS[oid] = public_key_bytes(key)
    return oid, order


def _published(
    world: World, stock: Stock, oid: int, order: Order, pubkey: bytes | None = None
) -> tuple[bytes, PublishedRelease]:
    """Seal an order's release as the delivery agent does, and what deliverOnChain carries."""
    built = seal_release(
        chain_id=world.chain.chain_id,
        escrow=world.escrow.address,
        order_id=oid,
        buyer_pubkey=pubkey or PUBKEYS[oid],
        codes=stock.to_seal(oid, order.quantity),
    )
    published = published_from_manifest(built.sealed, built.manifest)
    assert published.digest() == built.digest
    return built.digest, published


@pytest.fixture(scope="module")
def scene() -> Scene:
    world = make_world(embedded_chain(), buyers=3)
    listing = open_listing(world, stock=0, unit_price=PRICE)
    codes = demo_codes(16)
    salts0, tree0 = commit_codes(world, listing, codes[:8])
    salts1, tree1 = commit_codes(world, listing, codes[8:], first_index=8)
    stock = Stock(listing, codes, salts0 + salts1, [(0, tree0), (8, tree1)])
    buyer, other = world.buyers[0], world.buyers[1]
    escrow, agent = world.escrow, world.delivery_key

    # Paid before the listing's promise, delivered the old way: only a digest on-chain.
    off, off_order = _buy(world, buyer, listing, 2)  # indexes 0, 1
    digest, _ = _published(world, stock, off, off_order)
    escrow.deliver(agent, [(off, off_order, digest)])
    escrow.require_on_chain_release(world.supplier, listing)

    one, one_order = _buy(world, buyer, listing, 3)  # 2..4, batch 0
    two, two_order = _buy(world, buyer, listing, 4)  # 5..8, across both batches
    wrong_key, wk_order = _buy(world, buyer, listing, 1)  # 9: sealed to another key
    bad_proof, bp_order = _buy(world, buyer, listing, 2)  # 10, 11: a proof that does not hold
    theirs, theirs_order = _buy(world, other, listing, 1)  # 12: another buyer's
    waiting, _ = _buy(world, buyer, listing, 1)  # 13: not delivered
    refunded, refunded_order = _buy(world, buyer, listing, 1)  # 14: refunded after its deadline

    items = []
    for oid, order in ((one, one_order), (two, two_order), (theirs, theirs_order)):
        items.append((oid, order, *_published(world, stock, oid, order)))
    stranger = bytes(PrivateKey.generate().public_key)
    items.append((wrong_key, wk_order, *_published(world, stock, wrong_key, wk_order, stranger)))
    # deliverOnChain binds the sealed bytes, the element root and the key hash, not the proofs:
    # a supplier can publish a wrong one, and the buyer's check must catch it.
    digest, good = _published(world, stock, bad_proof, bp_order)
    rows = decode_release_proofs(good.proofs)
    index, committed, batch, proof = rows[1]
    rows[1] = (index, committed, batch, [bytes(32), *proof[1:]])
    items.append((bad_proof, bp_order, digest, replace(good, proofs=encode_release_proofs(rows))))
    escrow.deliver_on_chain(agent, items)
    world.chain.travel_to(refunded_order.deadline + 1)
    escrow.refund(buyer, refunded, refunded_order)
    orders = {
        "off": off,
        "one": one,
        "two": two,
        "wrong_key": wrong_key,
        "bad_proof": bad_proof,
        "theirs": theirs,
        "waiting": waiting,
        "refunded": refunded,
    }
    return Scene(world, stock, buyer, orders)


def test_recover_gets_every_on_chain_code_and_reports_the_rest(scene: Scene) -> None:
    progress: list[tuple[str, int, int]] = []
    found = recover(scene.world.escrow, scene.buyer, progress=lambda *a: progress.append(a), step=7)
    by_id: dict[int, OrderRecovery] = {o.order_id: o for o in found.orders}
    ids = scene.orders
    assert ids["theirs"] not in by_id  # only the wallet's own orders
    assert [o.order_id for o in found.orders] == [
        ids[k] for k in ("off", "one", "two", "wrong_key", "bad_proof", "waiting", "refunded")
    ]
    assert found.from_block > 0  # the escrow's deployment block, found by bisection
    assert found.count("recovered") == 2
    for name, first, quantity in (("one", 2, 3), ("two", 5, 4)):
        got = by_id[ids[name]]
        assert got.status == "recovered" and got.reason is None, got
        assert [c.index for c in got.codes] == list(range(first, first + quantity))
        assert [c.code for c in got.codes] == scene.stock.codes[first : first + quantity]
        assert all(c.expires_at == 1_900_000_000 for c in got.codes)
        assert got.delivery_tx is not None
    off = by_id[ids["off"]]
    assert (off.status, off.codes) == ("off-chain", [])
    assert "live only with the platform" in off.detail
    failed = {k: by_id[ids[k]] for k in ("wrong_key", "bad_proof")}
    assert failed["wrong_key"].status == "failed" and failed["wrong_key"].reason == "cannot-open"
    assert failed["bad_proof"].status == "failed"
    assert failed["bad_proof"].reason == "proof-mismatch"
    assert all(o.codes == [] for o in failed.values())
    waiting = by_id[ids["waiting"]]
    assert waiting.status == "not-delivered" and "not delivered it yet" in waiting.detail
    refund = by_id[ids["refunded"]]
    assert refund.status == "not-delivered" and "refunded" in refund.detail
    # Progress came in bounded ranges, both stages, ending at the last block.
    assert {stage for stage, *_ in progress} == {"orders", "deliveries"}
    assert all(done <= total for _, done, total in progress)
    assert progress[-1][1] == progress[-1][2] and len(progress) > 2
    # Nothing printable holds a code; the JSON form holds them all, for a private file only.
    text = " ".join(repr(o) + o.detail for o in found.orders)
    assert not any(c.decode() in text for c in scene.stock.codes)
    dumped = found.as_json()
    assert [c["code"] for c in dumped["orders"][1]["codes"]] == [
        c.decode() for c in scene.stock.codes[2:5]
    ]
    # Scanning from after the purchases finds none; the deployment block is no worse than 0.
    later = recover(scene.world.escrow, scene.buyer, found.to_block + 1)
    assert later.orders == []
    assert recover(scene.world.escrow, scene.buyer, 0).orders == found.orders


def test_wrong_address_and_a_wallet_with_no_orders(scene: Scene) -> None:
    chain = scene.world.chain
    token, _ = deploy_contract(chain, scene.world.admin, "TestToken", "Tether USD", "USDT")
    for address in (scene.world.fee_recipient.address, token):  # no code; code, not an escrow
        with pytest.raises(NoEscrowError) as err:
            recover(EscrowClient(chain, address), scene.buyer)
        message = str(err.value)
        assert message == (
            f"no kameng escrow at {EscrowClient(chain, address).address} on chain "
            f"{chain.chain_id}: wrong chain or wrong address"
        )
    nobody = recover(scene.world.escrow, scene.world.buyers[2])
    assert nobody.orders == [] and nobody.buyer == scene.world.buyers[2].address
