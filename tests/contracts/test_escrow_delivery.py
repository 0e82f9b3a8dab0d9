"""Delivery: release digests by the supplier or its delivery key, batched, and every bad input."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from contracts.encoding import Order, OrderState
from tests.contracts.helpers import (
    DIGEST,
    ZERO32,
    Env,
    assert_reverts,
    tx_time,
)


def test_supplier_delivers_and_opens_the_dispute_window(env: Env) -> None:
    oid, order = env.buy()
    (delivered,), res = env.escrow.deliver(env.supplier, [(oid, order, DIGEST)])
    ts = tx_time(env, res.block_number)
    assert delivered == order.with_changes(
        state=OrderState.DELIVERED, deadline=ts + order.dispute_window, release_digest=DIGEST
    )
    assert env.escrow.order_hash(oid) == delivered.hash()
    ev = res.event("OrderDelivered").args
    assert (ev["orderId"], ev["releaseDigest"]) == (oid, DIGEST)


def test_delivery_key_may_deliver(env: Env) -> None:
    oid, order = env.buy()
    (delivered,), _ = env.escrow.deliver(env.world.delivery_key, [(oid, order, DIGEST)])
    assert env.escrow.order_matches(oid, delivered)


def test_many_orders_deliver_in_one_transaction(env: Env) -> None:
    bought = [env.buy(buyer=b, quantity=i + 1) for i, b in enumerate(env.world.buyers)]
    bought.append(env.buy(env.usdc_listing))
    items = [(oid, o, keccak(oid.to_bytes(32, "big"))) for oid, o in bought]
    delivered, res = env.escrow.deliver(env.world.delivery_key, items)
    assert [e.args["orderId"] for e in res.all("OrderDelivered")] == [i[0] for i in items]
    for (oid, _, digest), order in zip(items, delivered, strict=True):
        assert env.escrow.order_matches(oid, order) and order.release_digest == digest


@pytest.mark.parametrize("who", ["outsider", "buyer", "arbiter", "admin"])
def test_delivery_by_anyone_else_reverts_wrong_caller(env: Env, who: str) -> None:
    account = {
        "outsider": env.outsider,
        "buyer": env.buyer,
        "arbiter": env.arbiter,
        "admin": env.admin,
    }[who]
    oid, order = env.buy()
    assert_reverts(
        env,
        lambda: env.escrow.deliver(account, [(oid, order, DIGEST)]),
        "EscrowWrongCaller",
        [account.address],
        orders=[oid],
    )


def test_removed_delivery_key_may_no_longer_deliver(env: Env) -> None:
    key = env.world.delivery_key
    res = env.escrow.set_delivery_key(env.supplier, key.address, False)
    ev = res.event("DeliveryKeySet").args
    assert ev["enabled"] is False and ev["key"].lower() == key.address.lower()
    assert env.escrow.call("isDeliveryKey", env.supplier.address, key.address) is False
    oid, order = env.buy()
    assert_reverts(
        env,
        lambda: env.escrow.deliver(key, [(oid, order, DIGEST)]),
        "EscrowWrongCaller",
        [key.address],
        orders=[oid],
    )


def test_delivery_key_of_one_supplier_cannot_deliver_for_another(env: Env) -> None:
    other, sku = env.add_supplier()
    lid, _ = env.escrow.create_listing(other, sku=sku, unit_price=10**15)
    env.escrow.commit_batch(other, lid, keccak(b"root"), 5)
    theirs = env.buy(lid)
    ours = env.buy()
    items = [(ours[0], ours[1], DIGEST), (theirs[0], theirs[1], DIGEST)]
    key = env.world.delivery_key
    assert_reverts(
        env,
        lambda: env.escrow.deliver(key, items),
        "EscrowWrongCaller",
        [key.address],
        orders=[ours[0], theirs[0]],
    )
    # Each supplier delivers its own.
    env.escrow.deliver(key, items[:1])
    env.escrow.deliver(other, items[1:])


def test_set_delivery_key_rejects_zero_and_self(env: Env) -> None:
    for key in ("0x" + "00" * 20, env.supplier.address):
        assert_reverts(
            env,
            lambda key=key: env.escrow.set_delivery_key(env.supplier, key),  # type: ignore[misc]
            "EscrowBadArgument",
            ["key"],
        )


def test_zero_digest_reverts(env: Env) -> None:
    oid, order = env.buy()
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(oid, order, ZERO32)]),
        "EscrowBadArgument",
        ["releaseDigest"],
        orders=[oid],
    )


def test_empty_and_mismatched_arrays_revert(env: Env) -> None:
    oid, order = env.buy()
    fn = env.escrow.contract.functions.deliver

    def send(ids: list[int], orders: list[Order], digests: list[bytes]) -> object:
        return env.tx.send(env.supplier, fn(ids, [o.as_tuple() for o in orders], digests))

    assert_reverts(env, lambda: send([], [], []), "EscrowBadArgument", ["orderIds"])
    assert_reverts(
        env, lambda: send([oid], [order, order], [DIGEST]), "EscrowLengthMismatch", [], orders=[oid]
    )
    assert_reverts(
        env,
        lambda: send([oid], [order], [DIGEST, DIGEST]),
        "EscrowLengthMismatch",
        [],
        orders=[oid],
    )


def test_one_bad_order_reverts_the_whole_batch(env: Env) -> None:
    a = env.buy()
    b = env.buy(buyer=env.world.buyers[1])
    bad = b[1].with_changes(quantity=2)
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(a[0], a[1], DIGEST), (b[0], bad, DIGEST)]),
        "EscrowUnknownOrder",
        [b[0]],
        orders=[a[0], b[0]],
    )


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 1},
        {"bond": 0},
        {"quantity": 5},
        {"fee_bps": 0},
        {"reseller_cut": 300},
        {"dispute_window": 10**6},
        {"deadline": 2**40 - 1},
        {"state": OrderState.DELIVERED},
        {"release_digest": DIGEST},
        {"buyer": "0x" + "11" * 20},
        {"supplier": "0x" + "22" * 20},
        {"token": "0x" + "33" * 20},
        {"reseller": "0x" + "44" * 20},
    ],
)
def test_tampered_order_reverts_unknown_order(env: Env, change: dict[str, object]) -> None:
    oid, order = env.buy()
    forged = order.with_changes(**change)
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(oid, forged, DIGEST)]),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
        mined=False,
    )


def test_order_under_another_id_reverts_unknown_order(env: Env) -> None:
    oid, order = env.buy()
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(oid + 1, order, DIGEST)]),
        "EscrowUnknownOrder",
        [oid + 1],
        orders=[oid],
    )


def test_delivering_twice_reverts(env: Env) -> None:
    oid, order = env.buy()
    delivered = env.deliver(oid, order)
    # The struct as it was is no longer stored ...
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(oid, order, keccak(b"again"))]),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
    )
    # ... and the struct as it is now is in the wrong state.
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(oid, delivered, keccak(b"again"))]),
        "EscrowWrongState",
        [oid, OrderState.DELIVERED],
        orders=[oid],
    )


def test_the_same_order_twice_in_one_batch_reverts(env: Env) -> None:
    oid, order = env.buy()
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(oid, order, DIGEST), (oid, order, DIGEST)]),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
    )


def test_delivery_of_finished_orders_reverts_unknown_order(env: Env) -> None:
    oid, order = env.delivered_order()
    env.escrow.confirm(env.buyer, oid, order)
    assert env.escrow.order_hash(oid) == ZERO32
    for stale in (order, order.with_changes(state=OrderState.PAID)):
        assert_reverts(
            env,
            lambda stale=stale: env.escrow.deliver(env.supplier, [(oid, stale, DIGEST)]),  # type: ignore[misc]
            "EscrowUnknownOrder",
            [oid],
            orders=[oid],
        )
