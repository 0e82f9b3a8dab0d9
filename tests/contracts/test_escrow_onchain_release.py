"""On-chain delivery (issue 16): `deliverOnChain` publishes sealed releases that hash to their
digests, `requireOnChainRelease` makes it the only way to deliver later orders of a listing, and
every bad input reverts with a named error and changes nothing."""

from __future__ import annotations

import os

from eth_utils import keccak

from contracts.encoding import (
    OrderState,
    PublishedRelease,
    decode_release_proofs,
    encode_release_proofs,
    split_order_id,
)
from tests.contracts.helpers import Env, assert_reverts, tx_time

MAX_ON_CHAIN_QUANTITY = 32


def published(oid: int, size: int = 120) -> PublishedRelease:
    """A release-shaped value: random sealed bytes and a proof row per code."""
    _, first = split_order_id(oid)
    proofs = encode_release_proofs([(first, keccak(os.urandom(8)), 0, [keccak(b"sibling")])])
    return PublishedRelease(
        sealed_release=os.urandom(size),
        element_root=keccak(os.urandom(8)),
        key_hash=keccak(os.urandom(8)),
        proofs=proofs,
    )


def test_deliver_on_chain_emits_the_release_and_stores_its_digest(env: Env) -> None:
    oid, order = env.buy(quantity=2)
    rel = published(oid)
    (delivered,), res = env.escrow.deliver_on_chain(
        env.world.delivery_key, [(oid, order, rel.digest(), rel)]
    )
    ts = tx_time(env, res.block_number)
    assert delivered == order.with_changes(
        state=OrderState.DELIVERED, deadline=ts + order.dispute_window, release_digest=rel.digest()
    )
    assert env.escrow.order_matches(oid, delivered)
    names = [e.name for e in res.events]
    assert names.index("OrderDelivered") < names.index("ReleasePublished")
    assert env.escrow.published_releases([oid]) == {oid: rel}


def test_a_batch_publishes_every_release_and_skips_refunded_ones(env: Env) -> None:
    bought = [env.buy(buyer=b) for b in env.world.buyers]
    items = []
    for oid, o in bought:
        rel = published(oid)
        items.append((oid, o, rel.digest(), rel))
    _, res = env.escrow.deliver_on_chain(env.supplier, items)
    assert [e.args["orderId"] for e in res.all("ReleasePublished")] == [i[0] for i in items]
    found = env.escrow.published_releases([i[0] for i in items])
    assert found == {oid: rel for oid, _, _, rel in items}


def test_a_release_that_does_not_hash_to_its_digest_reverts(env: Env) -> None:
    oid, order = env.buy()
    rel = published(oid)
    other = published(oid)
    assert_reverts(
        env,
        lambda: env.escrow.deliver_on_chain(env.supplier, [(oid, order, other.digest(), rel)]),
        "EscrowReleaseMismatch",
        [oid],
        orders=[oid],
    )


def test_one_bad_release_in_a_batch_reverts_the_whole_batch(env: Env) -> None:
    (a, oa), (b, ob) = env.buy(), env.buy(buyer=env.world.buyers[1])
    ra, rb = published(a), published(b)
    assert_reverts(
        env,
        lambda: env.escrow.deliver_on_chain(
            env.supplier, [(a, oa, ra.digest(), ra), (b, ob, ra.digest(), rb)]
        ),
        "EscrowReleaseMismatch",
        [b],
        orders=[a, b],
    )


def test_length_mismatch_and_strangers_revert(env: Env) -> None:
    oid, order = env.buy()
    rel = published(oid)
    assert_reverts(
        env,
        lambda: env.escrow._send(
            env.supplier,
            "deliverOnChain",
            [oid],
            [order.as_tuple()],
            [rel.digest()],
            [],
        ),
        "EscrowLengthMismatch",
        orders=[oid],
    )
    assert_reverts(
        env,
        lambda: env.escrow.deliver_on_chain(env.outsider, [(oid, order, rel.digest(), rel)]),
        "EscrowWrongCaller",
        [env.outsider.address],
        orders=[oid],
    )


def test_required_listing_refuses_plain_deliver_for_later_orders_only(env: Env) -> None:
    before, order_before = env.buy(quantity=2)
    res = env.escrow.require_on_chain_release(env.supplier, env.eth_listing)
    sold = env.escrow.listing(env.eth_listing)["sold"]
    assert res.event("OnChainReleaseRequired").args["onChainFrom"] == sold + 1
    assert env.escrow.listing(env.eth_listing)["on_chain_from"] == sold + 1
    after, order_after = env.buy()
    # The order paid before the promise may still be delivered off-chain.
    env.deliver(before, order_before)
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(after, order_after, keccak(b"d"))]),
        "EscrowReleaseRequired",
        [after],
        orders=[after],
    )
    rel = published(after)
    (delivered,), _ = env.escrow.deliver_on_chain(
        env.supplier, [(after, order_after, rel.digest(), rel)]
    )
    assert delivered.state == OrderState.DELIVERED


def test_require_is_the_suppliers_own_and_one_way(env: Env) -> None:
    assert_reverts(
        env,
        lambda: env.escrow.require_on_chain_release(env.outsider, env.eth_listing),
        "EscrowWrongCaller",
        [env.outsider.address],
    )
    assert_reverts(
        env,
        lambda: env.escrow.require_on_chain_release(env.supplier, 999),
        "EscrowUnknownListing",
        [999],
    )
    env.escrow.require_on_chain_release(env.supplier, env.eth_listing)
    first = env.escrow.listing(env.eth_listing)["on_chain_from"]
    env.buy()
    again = env.escrow.require_on_chain_release(env.supplier, env.eth_listing)
    assert again.events == []  # a second call changes nothing
    assert env.escrow.listing(env.eth_listing)["on_chain_from"] == first
    # Re-pricing or pausing the listing does not undo it either.
    env.escrow.update_listing(env.supplier, env.eth_listing, unit_price=10**16, active=True)
    assert env.escrow.listing(env.eth_listing)["on_chain_from"] == first


def test_orders_of_a_required_listing_hold_at_most_32_codes(env: Env) -> None:
    env.escrow.commit_batch(env.supplier, env.eth_listing, keccak(b"more"), 40)
    env.escrow.require_on_chain_release(env.supplier, env.eth_listing)
    price = env.price(env.eth_listing)
    assert_reverts(
        env,
        lambda: env.escrow.buy(
            env.buyer,
            env.eth_listing,
            MAX_ON_CHAIN_QUANTITY + 1,
            max_unit_price=price,
            buyer_pubkey=keccak(b"k"),
            value=price * (MAX_ON_CHAIN_QUANTITY + 1),
        ),
        "EscrowQuantityTooLarge",
        [MAX_ON_CHAIN_QUANTITY + 1, MAX_ON_CHAIN_QUANTITY],
    )
    oid, order = env.buy(quantity=MAX_ON_CHAIN_QUANTITY)
    assert order.quantity == MAX_ON_CHAIN_QUANTITY
    assert int(env.escrow.call("MAX_ON_CHAIN_QUANTITY")) == MAX_ON_CHAIN_QUANTITY


def test_release_proofs_round_trip_and_refuse_garbage() -> None:
    items = [(7, keccak(b"c7"), 0, [keccak(b"a"), keccak(b"b")]), (8, keccak(b"c8"), 1, [])]
    assert decode_release_proofs(encode_release_proofs(items)) == items
    try:
        decode_release_proofs(b"\x01\x02")
    except ValueError as exc:
        assert "not valid ABI" in str(exc)
    else:  # pragma: no cover - the assertion above is the test
        raise AssertionError("garbage decoded")
