"""Buying: escrowed payment, contiguous code ranges, the stored order hash, and every bad input."""

from __future__ import annotations

from contracts.encoding import Order, OrderState, order_id, split_order_id
from tests.contracts.helpers import (
    ETH,
    ETH_BOND_BPS,
    ETH_PRICE,
    ETH_RESELLER_PRICE,
    ETH_SHOP_PRICE,
    PUBKEY,
    STOCK,
    USDC_PRICE,
    ZERO32,
    Env,
    assert_reverts,
)

SOLD = 2


def test_buy_escrows_payment_and_stores_order_hash(env: Env) -> None:
    escrow, buyer, lid = env.escrow, env.buyer, env.eth_listing
    held = env.held(ETH)
    oid, order, res = escrow.buy(buyer, lid, 3, max_unit_price=ETH_PRICE, buyer_pubkey=PUBKEY)
    ts = escrow.block_timestamp(res.block_number)
    assert oid == order_id(lid, 0) and split_order_id(oid) == (lid, 0)
    assert order == Order(
        buyer=buyer.address,
        supplier=env.supplier.address,
        token=ETH,
        reseller=ETH,
        amount=3 * ETH_PRICE,
        bond=3 * ETH_PRICE * ETH_BOND_BPS // 10_000,
        quantity=3,
        fee_bps=200,
        reseller_cut=0,
        dispute_window=86_400,
        deadline=ts + 3600,
        state=OrderState.PAID,
        release_digest=ZERO32,
    )
    assert (
        escrow.order_hash(oid) == order.hash() == bytes(escrow.call("hashOrder", order.as_tuple()))
    )
    assert env.held(ETH) == held + 3 * ETH_PRICE
    assert escrow.call("getListing", lid)[SOLD] == 3
    ev = res.event("OrderPaid").args
    assert ev["buyerPubKey"] == PUBKEY and ev["orderId"] == oid


def test_orders_take_consecutive_code_ranges(env: Env) -> None:
    lid = env.eth_listing
    oid1, o1 = env.buy(quantity=4)
    oid2, o2 = env.buy(buyer=env.world.buyers[1], quantity=1)
    oid3, _ = env.buy(buyer=env.world.buyers[2], quantity=5)
    assert [split_order_id(o) for o in (oid1, oid2, oid3)] == [(lid, 0), (lid, 4), (lid, 5)]
    assert env.escrow.call("getListing", lid)[SOLD] == 10
    assert o1.hash() != o2.hash()


def test_buying_the_whole_remaining_stock_works_and_one_more_reverts(env: Env) -> None:
    lid = env.eth_listing
    oid, _ = env.buy(quantity=STOCK - 1)
    assert_reverts(env, lambda: env.buy(quantity=2), "EscrowStockShort", [lid, 2, 1], orders=[oid])
    oid2, _ = env.buy(quantity=1)
    assert split_order_id(oid2) == (lid, STOCK - 1)
    assert_reverts(env, lambda: env.buy(), "EscrowStockShort", [lid, 1, 0])


def test_zero_quantity_reverts(env: Env) -> None:
    assert_reverts(env, lambda: env.buy(quantity=0), "EscrowZeroQuantity", [])


def test_quantity_above_stock_reverts(env: Env) -> None:
    assert_reverts(
        env,
        lambda: env.buy(quantity=STOCK + 1),
        "EscrowStockShort",
        [env.eth_listing, STOCK + 1, STOCK],
    )


def test_unknown_listing_reverts(env: Env) -> None:
    assert_reverts(
        env,
        lambda: env.escrow.buy(env.buyer, 42, 1, max_unit_price=ETH_PRICE, buyer_pubkey=PUBKEY),
        "EscrowUnknownListing",
        [42],
    )


def test_listing_without_stock_reverts_stock_short(env: Env) -> None:
    lid, _ = env.escrow.create_listing(env.supplier, sku=env.world.sku, unit_price=ETH_PRICE)
    assert_reverts(env, lambda: env.buy(lid), "EscrowStockShort", [lid, 1, 0])


def test_inactive_listing_reverts(env: Env) -> None:
    lid = env.eth_listing
    env.escrow.update_listing(env.supplier, lid, ETH_PRICE, False)
    assert_reverts(env, lambda: env.buy(), "EscrowListingInactive", [lid])


def test_price_raised_in_flight_reverts_price_above_max(env: Env) -> None:
    lid = env.eth_listing
    env.escrow.update_listing(env.supplier, lid, ETH_PRICE + 1, True)
    assert_reverts(
        env,
        lambda: env.escrow.buy(env.buyer, lid, 1, max_unit_price=ETH_PRICE, buyer_pubkey=PUBKEY),
        "EscrowPriceAboveMax",
        [ETH_PRICE + 1, ETH_PRICE],
    )


def test_max_price_above_the_price_pays_the_listing_price(env: Env) -> None:
    lid = env.eth_listing
    _, order, _ = env.escrow.buy(
        env.buyer, lid, 2, max_unit_price=2 * ETH_PRICE, buyer_pubkey=PUBKEY, value=2 * ETH_PRICE
    )
    assert order.amount == 2 * ETH_PRICE


def test_wrong_value_reverts(env: Env) -> None:
    lid = env.eth_listing
    for sent in (ETH_PRICE - 1, ETH_PRICE + 1, 0):
        assert_reverts(
            env,
            lambda sent=sent: env.escrow.buy(  # type: ignore[misc]
                env.buyer, lid, 1, max_unit_price=ETH_PRICE, buyer_pubkey=PUBKEY, value=sent
            ),
            "EscrowWrongValue",
            [sent, ETH_PRICE],
        )


def test_native_value_on_a_token_listing_reverts(env: Env) -> None:
    lid = env.usdc_listing
    assert_reverts(
        env,
        lambda: env.escrow.buy(
            env.buyer, lid, 1, max_unit_price=USDC_PRICE, buyer_pubkey=PUBKEY, value=1
        ),
        "EscrowWrongValue",
        [1, 0],
    )


def test_token_buy_without_allowance_reverts(env: Env) -> None:
    buyer = env.world.buyers[1]
    env.send(buyer, env.usdc.functions.approve(env.escrow.address, USDC_PRICE - 1))
    assert_reverts(
        env,
        lambda: env.buy(env.usdc_listing, buyer=buyer),
        "ERC20InsufficientAllowance",
        [env.escrow.address, USDC_PRICE - 1, USDC_PRICE],
    )


def test_zero_buyer_key_reverts(env: Env) -> None:
    assert_reverts(
        env,
        lambda: env.escrow.buy(
            env.buyer, env.eth_listing, 1, max_unit_price=ETH_PRICE, buyer_pubkey=ZERO32
        ),
        "EscrowBadArgument",
        ["buyerPubKey"],
    )


def test_the_buyer_or_the_supplier_may_be_the_reseller_once_it_keeps_a_shop(env: Env) -> None:
    """Any address may be the reseller (there is no EscrowBadReferrer any more), the buyer and
    the supplier included, but only one whose shop sells the listing: before it sets a shop
    price, naming it reverts."""
    lid = env.eth_listing
    for who, price in ((env.buyer, ETH_RESELLER_PRICE), (env.supplier, ETH_SHOP_PRICE + 7)):
        assert_reverts(
            env,
            lambda who=who: env.buy(reseller=who.address),  # type: ignore[misc]
            "EscrowNotInShop",
            [who.address, lid],
        )
        env.escrow.set_shop_price(who, lid, price)
        _, order = env.buy(reseller=who.address, quantity=2)
        assert (order.buyer, order.reseller) == (env.buyer.address, who.address)
        assert order.amount == 2 * price
        assert order.reseller_cut == 2 * (price - ETH_RESELLER_PRICE)


def test_a_reseller_fixes_the_cut_and_no_reseller_none(env: Env) -> None:
    _, sold = env.buy(reseller=env.reseller.address, quantity=3)
    _, plain = env.buy(quantity=3)
    # In the shop: the shop's price, and the reseller's margin over the reseller price.
    assert sold.reseller == env.reseller.address and sold.amount == 3 * ETH_SHOP_PRICE
    assert sold.reseller_cut == 3 * (ETH_SHOP_PRICE - ETH_RESELLER_PRICE) == 9 * 10**15
    assert sold.bond == 3 * ETH_SHOP_PRICE * ETH_BOND_BPS // 10_000
    # Without: the listing's price, no reseller, no cut.
    assert plain.reseller == ETH and plain.reseller_cut == 0 and plain.amount == 3 * ETH_PRICE


def test_orders_keep_their_terms_when_the_listing_changes(env: Env) -> None:
    oid, order = env.buy()
    env.escrow.update_listing(env.supplier, env.eth_listing, 3 * ETH_PRICE, True)
    assert env.escrow.order_matches(oid, order)
    delivered = env.deliver(oid, order)
    env.escrow.confirm(env.buyer, oid, delivered)
    assert env.escrow.balance_of(env.supplier.address) == ETH_PRICE - ETH_PRICE * 200 // 10_000


def test_order_hash_matches_python_and_contract_hashing(env: Env) -> None:
    oid, order = env.buy(env.usdc_listing, quantity=2, reseller=env.reseller.address)
    assert order.reseller_cut > 0
    assert bytes(env.escrow.call("hashOrder", order.as_tuple())) == order.hash()
    assert env.escrow.order_hash(oid) == order.hash()
    tampered = order.with_changes(amount=order.amount + 1)
    assert (
        bytes(env.escrow.call("hashOrder", tampered.as_tuple())) == tampered.hash() != order.hash()
    )
