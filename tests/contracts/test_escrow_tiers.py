"""Volume tiers (批发价): a supplier gives a listing up to three quantity breaks over its base
price, each a discount in basis points; ``buy`` takes the discount of the largest break the
quantity reaches off the unit price the order pays (the listing's or a shop's) and off the
supplier's reseller price alike, so a reseller's margin shrinks in the same proportion.

The price is ``p - p * bps // 10000`` (`tests.contracts.helpers.tier_price`). After every ending
the escrow holds exactly what it owes; every refused input is a named error that changes nothing
(`assert_reverts` compares the whole state, the packed tiers included).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from eth_account.signers.local import LocalAccount

from contracts.encoding import Order
from contracts.order_rules import tier_fault, tier_price
from tests.contracts.helpers import (
    BPS,
    ETH,
    ETH_PRICE,
    FEE_BPS,
    PUBKEY,
    USDC_PRICE,
    USDC_RESELLER_PRICE,
    USDC_SHOP_PRICE,
    Env,
    assert_reverts,
    split,
)

#: 1-2 at the base price, 3-9 at 5% off, 10 and more at 10% off.
TIERS = [(3, 500), (10, 1_000)]


def conserved(env: Env, open_orders: Sequence[tuple[int, Order]] = ()) -> None:
    """The escrow holds exactly what it owes, in every token."""
    for token in env.tokens:
        assert env.held(token) == env.liabilities(token, list(open_orders)), token


def buy(
    env: Env,
    lid: int,
    quantity: int,
    max_unit_price: int,
    *,
    reseller: str = ETH,
    value: int = 0,
    buyer: LocalAccount | None = None,
) -> tuple[int, Order]:
    """Buy `quantity` of `lid` with the given bound and payment."""
    oid, order, _ = env.escrow.buy(
        buyer or env.buyer,
        lid,
        quantity,
        max_unit_price=max_unit_price,
        buyer_pubkey=PUBKEY,
        reseller=reseller,
        value=value,
    )
    return oid, order


def test_set_read_and_remove_tiers(env: Env) -> None:
    escrow, lid = env.escrow, env.eth_listing
    assert tier_fault(TIERS) is None
    assert escrow.storage.tiers(lid) == [] and escrow.listing(lid)["tiered"] is False
    res = escrow.set_tiers(env.supplier, lid, TIERS)
    args = res.event("TiersSet").args
    assert (args["listingId"], list(args["minQuantities"]), list(args["discountsBps"])) == (
        lid,
        [3, 10],
        [500, 1_000],
    )
    assert escrow.storage.tiers(lid) == TIERS and escrow.listing(lid)["tiered"] is True
    # The widest values a tier holds, all three breaks.
    widest = [(2, 1), (2**31, 5_000), (2**32 - 1, 9_999)]
    escrow.set_tiers(env.supplier, lid, widest)
    assert escrow.storage.tiers(lid) == widest
    escrow.set_tiers(env.supplier, lid, [])
    assert escrow.storage.tiers(lid) == [] and escrow.listing(lid)["tiered"] is False
    assert int(escrow.call("tiers", lid)) == 0


@pytest.mark.parametrize(
    ("quantity", "unit"),
    [(1, ETH_PRICE), (2, ETH_PRICE), (3, ETH_PRICE * 95 // 100), (9, ETH_PRICE * 95 // 100)]
    + [(10, ETH_PRICE * 90 // 100), (17, ETH_PRICE * 90 // 100)],
)
def test_buy_charges_the_tier_the_quantity_reaches(env: Env, quantity: int, unit: int) -> None:
    escrow, lid = env.escrow, env.eth_listing
    escrow.set_tiers(env.supplier, lid, TIERS)
    assert env.price(lid, quantity=quantity) == unit
    oid, order = buy(env, lid, quantity, unit, value=unit * quantity)
    assert order.amount == unit * quantity
    assert order.bond == unit * quantity * env.escrow.listing(lid)["bond_bps"] // BPS
    conserved(env, [(oid, order)])
    order = env.deliver(oid, order)
    escrow.confirm(env.buyer, oid, order)
    to_supplier, fee, _ = split(order)
    assert env.escrow.balance_of(env.supplier.address, ETH) == to_supplier
    assert escrow.call("feesOf", ETH) == fee == unit * quantity * FEE_BPS // BPS
    conserved(env)


def test_the_buyers_bound_is_checked_against_the_tier_price(env: Env) -> None:
    lid = env.eth_listing
    env.escrow.set_tiers(env.supplier, lid, TIERS)
    unit = ETH_PRICE * 95 // 100
    assert_reverts(
        env,
        lambda: buy(env, lid, 3, unit - 1, value=unit * 3),
        "EscrowPriceAboveMax",
        [unit, unit - 1],
    )
    # Paying the base price for a tiered quantity is the wrong value, not a tip.
    assert_reverts(
        env,
        lambda: buy(env, lid, 3, ETH_PRICE, value=ETH_PRICE * 3),
        "EscrowWrongValue",
        [ETH_PRICE * 3, unit * 3],
    )
    _, order = buy(env, lid, 3, ETH_PRICE, value=unit * 3)  # a looser bound is fine
    assert order.amount == unit * 3


def test_tiers_discount_a_shop_sale_and_the_reseller_price_alike(env: Env) -> None:
    """USDC, 10 codes in the shop at 4.5 over a reseller price of 4, 10% off from 10: the buyer
    pays 4.05 a code (40.5), of which the supplier's part is 3.6 a code and the reseller's cut
    0.45 a code (4.5): the same 10% of each."""
    escrow, lid, usdc = env.escrow, env.usdc_listing, env.usdc.address
    escrow.set_tiers(env.supplier, lid, TIERS)
    shop = tier_price(USDC_SHOP_PRICE, TIERS, 10)
    rp = tier_price(USDC_RESELLER_PRICE, TIERS, 10)
    assert (shop, rp) == (4_050_000, 3_600_000)
    oid, order = buy(env, lid, 10, shop, reseller=env.reseller.address)
    assert (order.amount, order.reseller_cut) == (40_500_000, 4_500_000)
    order = env.deliver(oid, order)
    escrow.confirm(env.buyer, oid, order)
    to_supplier, fee, commission = split(order)
    assert (to_supplier, fee, commission) == (35_280_000, 810_000, 4_410_000)
    assert [escrow.balance_of(a, usdc) for a in (env.supplier.address, env.reseller.address)] == [
        to_supplier,
        commission,
    ]
    conserved(env)


@pytest.mark.parametrize(("shop", "rp", "bps"), [(4, 3, 5_000), (3, 3, 3_333), (7, 1, 9_999)])
def test_rounding_never_puts_the_shop_price_below_the_reseller_price(
    env: Env, shop: int, rp: int, bps: int
) -> None:
    """At the smallest token units the rounded prices keep their order, and no unit is free."""
    escrow, lid = env.escrow, env.usdc_listing
    escrow.set_reseller_price(env.supplier, lid, rp)
    escrow.set_shop_price(env.reseller, lid, shop)
    escrow.set_tiers(env.supplier, lid, [(2, bps)])
    unit, supplier_unit = tier_price(shop, [(2, bps)], 2), tier_price(rp, [(2, bps)], 2)
    assert unit >= supplier_unit >= 1
    oid, order = buy(env, lid, 2, unit, reseller=env.reseller.address)
    assert (order.amount, order.reseller_cut) == (2 * unit, 2 * (unit - supplier_unit))
    conserved(env, [(oid, order)])


def test_refund_and_ruling_of_tiered_orders_conserve(env: Env) -> None:
    escrow, lid = env.escrow, env.usdc_listing
    escrow.set_tiers(env.supplier, lid, TIERS)
    oid, order = env.buy(lid, quantity=4, reseller=env.reseller.address)
    assert order.amount == 4 * tier_price(USDC_SHOP_PRICE, TIERS, 4)
    env.chain.travel_to(order.deadline + 1)
    res = escrow.refund(env.outsider, oid, order)
    assert res.event("OrderRefunded").args["amount"] == order.amount
    conserved(env)
    oid, order = env.disputed_order(lid, quantity=12)
    assert order.amount == 12 * tier_price(USDC_PRICE, TIERS, 12)
    escrow.rule(env.arbiter, oid, order, buyer_bps=3_000, slash_bps=2_000)
    conserved(env)


def test_open_orders_keep_their_price_when_the_tiers_change(env: Env) -> None:
    escrow, lid = env.escrow, env.eth_listing
    escrow.set_tiers(env.supplier, lid, TIERS)
    oid, order = env.buy(lid, quantity=3)
    escrow.set_tiers(env.supplier, lid, [(2, 9_000)])
    order = env.deliver(oid, order)
    escrow.confirm(env.buyer, oid, order)
    assert order.amount == 3 * (ETH_PRICE * 95 // 100)
    conserved(env)


# ---------------------------------------------------------------- named errors


@pytest.mark.parametrize(
    ("quantities", "discounts", "index"),
    [
        ([2, 3, 4, 5], [1, 2, 3, 4], 3),  # four breaks
        ([2, 3], [100], 3),  # lists of different lengths
        ([1], [100], 0),  # a break at one unit: that is the base price
        ([0], [100], 0),
        ([5, 5], [100, 200], 1),  # breaks not strictly increasing
        ([5, 4], [100, 200], 1),
        ([5, 10], [200, 200], 1),  # discounts not strictly increasing
        ([5, 10], [200, 100], 1),
        ([5], [0], 0),  # no discount
        ([5], [10_000], 0),  # everything off
        ([5, 10, 20], [100, 200, 65_535], 2),
    ],
)
def test_bad_tier_lists_revert(
    env: Env, quantities: list[int], discounts: list[int], index: int
) -> None:
    if len(quantities) == len(discounts):  # the rules the CLI and the web check first agree
        assert tier_fault(list(zip(quantities, discounts, strict=True))) is not None
    env.escrow.set_tiers(env.supplier, env.eth_listing, TIERS)  # refused lists change nothing
    assert_reverts(
        env,
        lambda: env.escrow._send(env.supplier, "setTiers", env.eth_listing, quantities, discounts),
        "EscrowBadTiers",
        [index],
    )


def test_only_the_supplier_sets_tiers_of_a_known_listing(env: Env) -> None:
    for account in (env.outsider, env.reseller, env.admin):
        assert_reverts(
            env,
            lambda account=account: env.escrow.set_tiers(account, env.eth_listing, TIERS),  # type: ignore[misc]
            "EscrowWrongCaller",
            [account.address],
        )
    assert_reverts(
        env, lambda: env.escrow.set_tiers(env.supplier, 99, TIERS), "EscrowUnknownListing", [99]
    )
