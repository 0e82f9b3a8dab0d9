"""Coupons: a listing's supplier signs a discount off-chain (EIP-712) and a buyer presents it to
``buyWithCoupon``. Its percentage comes off the unit price after any tier and off the reseller
price alike; its amount off comes out of the supplier's part (the reseller price falls by it, a
shop's margin stays). Uses are counted per (supplier, id), eight to a storage word.

Every refused coupon is a named error that changes nothing (`assert_reverts` compares the whole
state, the supplier's first coupon counters included), and after every ending the escrow holds
exactly what it owes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from contracts import coupons
from contracts.coupons import Coupon
from contracts.encoding import Order
from contracts.order_rules import coupon_prices, tier_price
from tests.contracts.helpers import (
    BPS,
    ETH,
    ETH_PRICE,
    PUBKEY,
    USDC,
    USDC_PRICE,
    USDC_RESELLER_PRICE,
    USDC_SHOP_PRICE,
    Env,
    assert_reverts,
    next_tx_at,
    pending_timestamp,
    split,
)

DAY = 24 * 3600


def conserved(env: Env, open_orders: Sequence[tuple[int, Order]] = ()) -> None:
    """The escrow holds exactly what it owes, in every token."""
    for token in env.tokens:
        assert env.held(token) == env.liabilities(token, list(open_orders)), token


def terms(env: Env, listing_id: int, **changes: object) -> Coupon:
    """An unsigned coupon for `listing_id`: 10% off, 5 uses, a day to run, id 1."""
    base = Coupon(
        listing_id=listing_id,
        sku=bytes(32),
        buyer=ETH,
        discount_bps=1_000,
        amount_off=0,
        max_uses=5,
        expiry=pending_timestamp(env.chain) + DAY,
        id=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def signed(env: Env, coupon: Coupon, signer: LocalAccount | None = None) -> Coupon:
    """`coupon` signed for this escrow by `signer` (the supplier by default)."""
    return env.escrow.sign_coupon(signer or env.supplier, coupon)


def buy(
    env: Env,
    coupon: Coupon,
    *,
    listing_id: int | None = None,
    quantity: int = 1,
    unit: int | None = None,
    reseller: str = ETH,
    buyer: LocalAccount | None = None,
) -> tuple[int, Order]:
    """Buy with `coupon`, bounding (and for ETH paying) `unit` a code (the coupon's price by
    default)."""
    lid = coupon.listing_id if listing_id is None else listing_id
    if unit is None:
        unit = coupon_price(env, coupon, lid, quantity, reseller)
    value = unit * quantity if env.listing_token(lid) == ETH else 0
    oid, order, _ = env.escrow.buy(
        buyer or env.buyer,
        lid,
        quantity,
        coupon=coupon,
        max_unit_price=unit,
        buyer_pubkey=PUBKEY,
        reseller=reseller,
        value=value,
    )
    return oid, order


def coupon_price(env: Env, coupon: Coupon, lid: int, quantity: int, reseller: str = ETH) -> int:
    """The unit price `coupon` leaves for this order, by `contracts.order_rules`."""
    base = env.price(lid, reseller, quantity)
    return coupon_prices(base, None, coupon.discount_bps, coupon.amount_off)[0]


def test_the_type_hash_and_the_signer_agree_with_the_escrow(env: Env) -> None:
    assert bytes(env.escrow.call("COUPON_TYPEHASH")) == coupons.type_hash()
    coupon = signed(env, terms(env, env.eth_listing))
    assert coupon.signer(env.chain.chain_id, env.escrow.address) == env.supplier.address
    assert Coupon.from_text(coupon.text()) == coupon
    # Another chain or another escrow is another domain: the same signature names nobody we know.
    assert coupon.signer(env.chain.chain_id + 1, env.escrow.address) != env.supplier.address


def test_a_percentage_coupon_discounts_and_counts_its_use(env: Env) -> None:
    escrow, lid = env.escrow, env.eth_listing
    coupon = signed(env, terms(env, lid))
    unit = ETH_PRICE * 90 // 100
    oid, order = buy(env, coupon, quantity=2, unit=unit)
    assert order.amount == 2 * unit
    assert escrow.storage.coupon_uses(env.supplier.address, 1) == 1
    order = env.deliver(oid, order)
    escrow.confirm(env.buyer, oid, order)
    to_supplier, _, _ = split(order)
    assert escrow.balance_of(env.supplier.address, ETH) == to_supplier
    conserved(env)


def test_an_amount_off_in_a_shop_comes_out_of_the_suppliers_part(env: Env) -> None:
    """USDC in the shop at 4.5 over a reseller price of 4, 0.5 off a code: the buyer pays 4,
    the supplier's part is 3.5 a code, the shop's margin stays 0.5 a code."""
    escrow, lid, shop = env.escrow, env.usdc_listing, env.reseller.address
    coupon = signed(env, terms(env, lid, discount_bps=0, amount_off=USDC // 2))
    unit, resale = coupon_prices(USDC_SHOP_PRICE, USDC_RESELLER_PRICE, 0, USDC // 2)
    assert (unit, resale) == (4 * USDC, 3_500_000)
    oid, order = buy(env, coupon, quantity=3, unit=unit, reseller=shop)
    assert (order.amount, order.reseller_cut) == (
        12 * USDC,
        3 * (USDC_SHOP_PRICE - USDC_RESELLER_PRICE),
    )
    order = env.deliver(oid, order)
    escrow.confirm(env.buyer, oid, order)
    to_supplier, fee, commission = split(order)
    usdc = env.usdc.address
    assert escrow.balance_of(env.supplier.address, usdc) == to_supplier
    assert escrow.balance_of(shop, usdc) == commission
    assert to_supplier + fee + commission == 12 * USDC
    conserved(env)


def test_a_coupon_stacks_on_a_tier_and_both_fall_on_the_reseller_price(env: Env) -> None:
    """10 codes in the shop with 10% off from 10 and a 5% coupon with 0.1 off: each price is
    taken 10%, then 5%, then 0.1."""
    escrow, lid, shop = env.escrow, env.usdc_listing, env.reseller.address
    escrow.set_tiers(env.supplier, lid, [(10, 1_000)])
    coupon = signed(env, terms(env, lid, discount_bps=500, amount_off=USDC // 10))
    tiered = tier_price(USDC_SHOP_PRICE, [(10, 1_000)], 10)
    tiered_resale = tier_price(USDC_RESELLER_PRICE, [(10, 1_000)], 10)
    unit, resale = coupon_prices(tiered, tiered_resale, 500, USDC // 10)
    assert (unit, resale) == (3_747_500, 3_320_000)
    assert resale is not None
    oid, order = buy(env, coupon, quantity=10, unit=unit, reseller=shop)
    assert (order.amount, order.reseller_cut) == (10 * unit, 10 * (unit - resale))
    conserved(env, [(oid, order)])


def test_refunds_and_rulings_of_coupon_orders_conserve(env: Env) -> None:
    escrow, lid = env.escrow, env.usdc_listing
    coupon = signed(env, terms(env, lid, amount_off=USDC // 4))
    oid, order = buy(env, coupon, quantity=2, reseller=env.reseller.address)
    env.chain.travel_to(order.deadline + 1)
    escrow.refund(env.outsider, oid, order)
    conserved(env)
    oid, order = buy(env, replace(coupon), quantity=4)
    order = env.dispute(oid, env.deliver(oid, order))
    escrow.rule(env.arbiter, oid, order, buyer_bps=4_000, slash_bps=1_000)
    conserved(env)
    assert escrow.storage.coupon_uses(env.supplier.address, 1) == 2


def test_a_product_coupon_is_good_for_every_listing_of_its_sku(env: Env) -> None:
    sku = bytes(env.escrow.listing(env.eth_listing)["sku"])
    coupon = signed(env, terms(env, 0, sku=sku, id=9))
    for lid in (env.eth_listing, env.usdc_listing):  # both listings are of the same product
        buy(env, coupon, listing_id=lid)
    assert env.escrow.storage.coupon_uses(env.supplier.address, 9) == 2
    _, other_sku = env.add_supplier()
    foreign = signed(env, terms(env, 0, sku=other_sku, id=9))
    assert_reverts(
        env,
        lambda: buy(env, foreign, listing_id=env.eth_listing, unit=ETH_PRICE),
        "EscrowCouponForeign",
        [env.eth_listing],
    )


def test_unlimited_coupons_count_nothing_and_limited_ones_run_out(env: Env) -> None:
    lid = env.eth_listing
    unlimited = signed(env, terms(env, lid, max_uses=0, id=2))
    for _ in range(3):
        buy(env, unlimited)
    assert env.escrow.storage.coupon_uses(env.supplier.address, 2) == 0
    twice = signed(env, terms(env, lid, max_uses=2, id=3))
    buy(env, twice)
    buy(env, twice)  # the same signature again: a second use, as the supplier allowed
    assert_reverts(env, lambda: buy(env, twice), "EscrowCouponUsedUp", [3, 2])
    # Counters share words: ids 2 and 3 sit side by side, and 11 is in the next word.
    assert env.escrow.storage.coupon_uses(env.supplier.address, 3) == 2
    buy(env, signed(env, terms(env, lid, max_uses=1, id=11)))
    assert [env.escrow.storage.coupon_uses(env.supplier.address, i) for i in (3, 10, 11)] == [
        2,
        0,
        1,
    ]


def test_a_revoked_coupon_is_refused_whatever_its_limit(env: Env) -> None:
    lid = env.eth_listing
    limited = signed(env, terms(env, lid, id=4))
    unlimited = signed(env, terms(env, lid, max_uses=0, id=4))
    buy(env, limited)
    res = env.escrow.revoke_coupon(env.supplier, 4)
    args = res.event("CouponRevoked").args
    assert (args["supplier"].lower(), args["id"]) == (env.supplier.address.lower(), 4)
    assert env.escrow.storage.coupon_uses(env.supplier.address, 4) == coupons.REVOKED
    assert_reverts(env, lambda: buy(env, limited), "EscrowCouponUsedUp", [4, 5])
    assert_reverts(env, lambda: buy(env, unlimited), "EscrowCouponUsedUp", [4, 0])
    # Another supplier revoking the same number ends only its own coupons.
    env.escrow.revoke_coupon(env.outsider, 5)
    buy(env, signed(env, terms(env, lid, id=5)))


def test_expiry_is_the_last_second_a_coupon_is_good(env: Env) -> None:
    lid = env.eth_listing
    expiry = pending_timestamp(env.chain) + 100
    coupon = signed(env, terms(env, lid, expiry=expiry))
    env.escrow.tx.fixed_gas = 2_000_000
    try:
        next_tx_at(env.chain, expiry)
        buy(env, coupon)
    finally:
        env.escrow.tx.fixed_gas = None
    env.chain.travel_to(expiry + 1)
    assert_reverts(env, lambda: buy(env, coupon), "EscrowCouponExpired", [expiry])


def test_a_bound_coupon_is_for_its_buyer_only(env: Env) -> None:
    lid = env.eth_listing
    mine = signed(env, terms(env, lid, buyer=env.buyer.address))
    other = env.world.buyers[1]
    assert_reverts(
        env, lambda: buy(env, mine, buyer=other), "EscrowCouponNotYours", [other.address]
    )
    buy(env, mine)


def test_coupons_for_another_listing_are_foreign(env: Env) -> None:
    coupon = signed(env, terms(env, env.usdc_listing))
    assert_reverts(
        env,
        lambda: buy(env, coupon, listing_id=env.eth_listing),
        "EscrowCouponForeign",
        [env.eth_listing],
    )


@pytest.mark.parametrize(
    "how", ["outsider", "other supplier", "tampered", "other domain", "garbage"]
)
def test_a_coupon_not_signed_by_the_listings_supplier_is_refused(env: Env, how: str) -> None:
    lid = env.eth_listing
    coupon = terms(env, lid)
    if how == "outsider":
        coupon = signed(env, coupon, env.outsider)
    elif how == "other supplier":
        other, _ = env.add_supplier()
        coupon = signed(env, coupon, other)
    elif how == "tampered":  # the buyer raises the discount after the supplier signed
        coupon = replace(signed(env, coupon), discount_bps=5_000)
    elif how == "other domain":
        coupon = coupons.sign(env.supplier, coupon, env.chain.chain_id + 1, env.escrow.address)
    else:
        coupon = replace(coupon, r=b"\x01" * 32, vs=b"\x02" * 32)
    assert_reverts(env, lambda: buy(env, coupon, unit=ETH_PRICE), "EscrowBadSignature", [])


def test_malformed_coupons_are_refused_by_name(env: Env) -> None:
    lid, shop = env.usdc_listing, env.reseller.address
    # 100% off: the supplier's signature does not make it valid (signed past `check_terms`).
    full = terms(env, lid, discount_bps=BPS)
    message = coupons.typed_data(full, env.chain.chain_id, env.escrow.address)
    full = coupons.with_signature(
        full, env.supplier.sign_message(encode_typed_data(full_message=message)).signature
    )
    assert_reverts(env, lambda: buy(env, full, unit=USDC_PRICE), "EscrowBadBps", [BPS])
    # An amount off the whole reseller price (in a shop) or the whole price (outside one).
    too_big = signed(env, terms(env, lid, discount_bps=0, amount_off=USDC_RESELLER_PRICE))
    assert_reverts(
        env,
        lambda: buy(env, too_big, unit=USDC_SHOP_PRICE, reseller=shop),
        "EscrowCouponTooLarge",
        [USDC_RESELLER_PRICE, USDC_RESELLER_PRICE],
    )
    whole = signed(env, terms(env, lid, discount_bps=0, amount_off=USDC_PRICE))
    assert_reverts(
        env,
        lambda: buy(env, whole, unit=USDC_PRICE),
        "EscrowCouponTooLarge",
        [USDC_PRICE, USDC_PRICE],
    )
    with pytest.raises(ValueError, match="must be less"):
        coupon_prices(USDC_PRICE, None, 0, USDC_PRICE)


def test_the_buyers_bound_is_the_price_after_the_coupon(env: Env) -> None:
    lid = env.eth_listing
    coupon = signed(env, terms(env, lid))
    unit = ETH_PRICE * 90 // 100
    assert_reverts(
        env,
        lambda: buy(env, coupon, unit=unit - 1),
        "EscrowPriceAboveMax",
        [unit, unit - 1],
    )
    # Native coin: paying the undiscounted price is the wrong value.
    assert_reverts(
        env,
        lambda: env.escrow.buy(
            env.buyer,
            lid,
            1,
            coupon=coupon,
            max_unit_price=ETH_PRICE,
            buyer_pubkey=PUBKEY,
            value=ETH_PRICE,
        ),
        "EscrowWrongValue",
        [ETH_PRICE, unit],
    )


def test_unknown_listings_and_a_paused_escrow_refuse_coupons(env: Env) -> None:
    coupon = signed(env, terms(env, 99))
    assert_reverts(env, lambda: buy(env, coupon, unit=ETH_PRICE), "EscrowUnknownListing", [99])
    env.escrow.pause(env.admin)
    coupon = signed(env, terms(env, env.eth_listing))
    assert_reverts(env, lambda: buy(env, coupon), "EnforcedPause", [])


def test_the_python_checks_agree_with_the_escrow(env: Env) -> None:
    """`contracts.coupons.fault` names the same refusals before anything is sent."""
    lid = env.eth_listing
    sku = bytes(env.escrow.listing(lid)["sku"])
    now = pending_timestamp(env.chain)
    base = terms(env, lid, max_uses=2)

    def fault(c: Coupon, used: int = 0, buyer: str | None = None) -> str | None:
        return coupons.fault(
            c, listing_id=lid, listing_sku=sku, buyer=buyer or env.buyer.address, now=now, used=used
        )

    assert fault(base) is None
    assert "expired" in (fault(replace(base, expiry=now - 1)) or "")
    assert "another listing" in (fault(replace(base, listing_id=lid + 1)) or "")
    assert fault(replace(base, listing_id=0, sku=sku)) is None
    assert "another buyer" in (fault(replace(base, buyer=env.outsider.address)) or "")
    assert "used 2 of 2" in (fault(base, used=2) or "")
    assert "revoked" in (fault(replace(base, max_uses=0), used=coupons.REVOKED) or "")
    with pytest.raises(coupons.CouponError, match="neither"):
        coupons.check_terms(replace(base, discount_bps=0))
    with pytest.raises(coupons.CouponError, match="not a coupon"):
        Coupon.from_text(base.text()[:-4])
