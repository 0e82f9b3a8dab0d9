"""Resellers (分站): a supplier opens a listing to resellers at a reseller price; any address
puts it in its shop at a price of its own, at least that; a buyer buys in a shop at the shop's
price, and the order fixes the reseller's cut, ``(shopPrice - resellerPrice) * quantity``.

Every ending splits the payment as ICodeEscrow documents (`tests.contracts.helpers.split`): the
platform's fee on the sellers' gross, the reseller's cut scaled as that gross is, less its share
of the fee, and the rest to the supplier. After every ending the escrow holds exactly what it
owes (`Env.liabilities`: balances, bonds, fees, open orders). Every refused input is a named
error that changes nothing (`assert_reverts` compares the whole state, reseller and shop prices
included). The environment's listings are open to resellers, and its reseller sells them:

- ETH: price 0.01, reseller price 0.008, in the shop at 0.011 (a cut of 0.003 a code);
- USDC: price 5, reseller price 4, in the shop at 4.5 (a cut of 0.5 a code).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr

from contracts.client import TxResult
from contracts.encoding import Order
from tests.contracts.helpers import (
    BPS,
    ETH,
    ETH_BOND,
    ETH_PRICE,
    ETH_RESELLER_PRICE,
    ETH_SHOP_PRICE,
    FEE_BPS,
    PUBKEY,
    USDC,
    USDC_BOND,
    USDC_PRICE,
    USDC_RESELLER_PRICE,
    USDC_SHOP_PRICE,
    ZERO32,
    Env,
    assert_reverts,
    bad_code_proof,
    commit_stock,
    config,
    split,
)

LISTINGS = ["eth", "usdc"]


def terms(env: Env, listing: str) -> tuple[int, str, int, int, int]:
    """(listing id, token, shop price, reseller price, supplier's bond) of one of the
    environment's listings."""
    if listing == "eth":
        return env.eth_listing, ETH, ETH_SHOP_PRICE, ETH_RESELLER_PRICE, ETH_BOND
    return env.usdc_listing, env.usdc.address, USDC_SHOP_PRICE, USDC_RESELLER_PRICE, USDC_BOND


def conserved(env: Env, open_orders: Iterable[tuple[int, Order]] = ()) -> None:
    """The escrow holds exactly what it owes, in every token: every balance and bond of every
    known account, the platform's fees and the open orders' amounts."""
    open_orders = list(open_orders)
    for token in env.tokens:
        assert env.held(token) == env.liabilities(token, open_orders), token


def balances(env: Env, token: str, *accounts: str) -> list[int]:
    """The escrow balances of `accounts` in `token`."""
    return [env.escrow.balance_of(a, token) for a in accounts]


# ---------------------------------------------------------------- confirm and settle


@pytest.mark.parametrize("listing", LISTINGS)
def test_confirm_pays_the_supplier_the_reseller_and_the_platform(env: Env, listing: str) -> None:
    escrow, supplier, reseller = env.escrow, env.supplier, env.reseller
    lid, token, shop, rp, bond = terms(env, listing)
    oid, order, res = escrow.buy(
        env.buyer,
        lid,
        3,
        max_unit_price=shop,
        buyer_pubkey=PUBKEY,
        reseller=reseller.address,
        value=3 * shop if token == ETH else 0,
    )
    paid = res.event("OrderPaid").args
    assert (paid["reseller"].lower(), paid["amount"], paid["resellerCut"]) == (
        reseller.address.lower(),
        3 * shop,
        3 * (shop - rp),
    )
    conserved(env, [(oid, order)])
    order = env.deliver(oid, order)
    escrow.confirm(env.buyer, oid, order)
    to_supplier, fee, commission = split(order)
    # The fee is 2% of the payment; the reseller keeps its cut less 2%; the supplier its reseller
    # price less 2% (the prices are round, so nothing is lost to rounding here).
    assert fee == 3 * shop * FEE_BPS // BPS
    assert commission == 3 * (shop - rp) * (BPS - FEE_BPS) // BPS
    assert to_supplier == 3 * rp * (BPS - FEE_BPS) // BPS
    assert to_supplier + fee + commission == order.amount
    assert balances(env, token, supplier.address, reseller.address) == [to_supplier, commission]
    assert escrow.call("feesOf", token) == fee
    assert escrow.bond_of(supplier.address, token) == (bond, 0)
    conserved(env)
    # The reseller takes its commission out of the escrow, in the listing's token.
    before = env.held(token, reseller.address)
    res = escrow.withdraw(reseller, token)
    receipt = env.chain.w3.eth.get_transaction_receipt(HexStr(res.tx_hash))
    gas = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert env.held(token, reseller.address) == before + commission - (gas if token == ETH else 0)
    conserved(env)


def test_worked_example_of_a_usdc_sale_in_a_shop(env: Env) -> None:
    """3 codes at 4.5 USDC in the shop, over a reseller price of 4: 13.5 USDC paid, a cut of 1.5.
    Fee 2% of 13.5 = 0.27; commission 1.5 - 0.03 = 1.47; supplier 13.5 - 0.27 - 1.47 = 11.76,
    which is 12 (its reseller price for 3) less 2%."""
    oid, order = env.delivered_order(env.usdc_listing, quantity=3, reseller=env.reseller.address)
    assert (order.amount, order.reseller_cut) == (13_500_000, 1_500_000)
    env.escrow.confirm(env.buyer, oid, order)
    assert split(order) == (11_760_000, 270_000, 1_470_000)
    token = env.usdc.address
    assert balances(env, token, env.supplier.address, env.reseller.address) == [
        11_760_000,
        1_470_000,
    ]


def test_settle_batch_mixing_shop_and_plain_orders(env: Env) -> None:
    """One settle of orders from two shops (one selling at the reseller price: no cut), plain
    orders and two tokens: every credit goes where its own order says."""
    escrow, reseller, zero_cut = env.escrow, env.reseller, env.outsider
    b1, b2, b3 = env.world.buyers
    escrow.set_shop_price(zero_cut, env.eth_listing, ETH_RESELLER_PRICE)
    placed = [
        env.buy(buyer=b1, quantity=2),
        env.buy(buyer=b2, reseller=reseller.address),
        env.buy(buyer=b3, quantity=3, reseller=zero_cut.address),
        env.buy(env.usdc_listing, buyer=b3, quantity=4, reseller=reseller.address),
        env.buy(env.usdc_listing, buyer=b1, quantity=2),
        env.buy(buyer=b2, quantity=2, reseller=reseller.address),
    ]
    assert [o.reseller_cut for _, o in placed] == [
        0,
        ETH_SHOP_PRICE - ETH_RESELLER_PRICE,
        0,
        4 * (USDC_SHOP_PRICE - USDC_RESELLER_PRICE),
        0,
        2 * (ETH_SHOP_PRICE - ETH_RESELLER_PRICE),
    ]
    delivered = [(oid, env.deliver(oid, o)) for oid, o in placed]
    conserved(env, delivered)
    env.chain.travel_to(max(o.deadline for _, o in delivered) + 1)
    res = escrow.settle(env.outsider, delivered)
    assert [e.args["orderId"] for e in res.all("OrderSettled")] == [oid for oid, _ in delivered]
    credits: dict[tuple[str, str], int] = {}
    fees: dict[str, int] = {}
    for _, o in delivered:
        to_supplier, fee, commission = split(o)
        for account, amount in ((o.supplier, to_supplier), (o.reseller, commission)):
            if amount:
                credits[(account, o.token)] = credits.get((account, o.token), 0) + amount
        fees[o.token] = fees.get(o.token, 0) + fee
    assert (reseller.address, ETH) in credits and (reseller.address, env.usdc.address) in credits
    assert escrow.balance_of(zero_cut.address) == 0  # sold at the reseller price: no cut
    for token in env.tokens:
        for account in env.accounts:
            assert escrow.balance_of(account, token) == credits.get((account, token), 0)
        assert escrow.call("feesOf", token) == fees.get(token, 0)
    assert escrow.bond_of(env.supplier.address) == (ETH_BOND, 0)
    assert escrow.bond_of(env.supplier.address, env.usdc.address) == (USDC_BOND, 0)
    assert all(escrow.order_hash(oid) == ZERO32 for oid, _ in delivered)
    conserved(env)


@pytest.mark.parametrize("listing", LISTINGS)
def test_the_split_at_the_fee_cap(env: Env, listing: str) -> None:
    """At the highest fee (50%), the reseller keeps half its cut and the supplier half its
    reseller price: the fee falls on each part of the payment alike."""
    lid, token, shop, rp, _ = terms(env, listing)
    env.escrow.set_config(env.admin, config(env, fee_bps=5_000))
    price = USDC_PRICE if token != ETH else ETH_PRICE
    env.escrow.update_listing(env.supplier, lid, price, True)  # moves it onto the new fee
    oid, order = env.delivered_order(lid, quantity=2, reseller=env.reseller.address)
    assert order.fee_bps == 5_000
    env.escrow.confirm(env.buyer, oid, order)
    assert split(order) == (2 * rp // 2, 2 * shop // 2, 2 * (shop - rp) // 2)
    assert balances(env, token, env.supplier.address, env.reseller.address) == [rp, shop - rp]
    conserved(env)


# ---------------------------------------------------------------- refund, rulings, proofs


@pytest.mark.parametrize("listing", LISTINGS)
def test_refund_returns_the_shop_price_and_pays_no_cut(env: Env, listing: str) -> None:
    escrow = env.escrow
    lid, token, shop, _, bond = terms(env, listing)
    oid, order = env.buy(lid, quantity=2, reseller=env.reseller.address)
    assert order.reseller_cut > 0
    env.chain.travel_to(order.deadline + 1)
    res = escrow.refund(env.outsider, oid, order)
    assert res.event("OrderRefunded").args["amount"] == 2 * shop
    assert balances(env, token, env.buyer.address, env.supplier.address, env.reseller.address) == [
        2 * shop,
        0,
        0,
    ]
    assert escrow.call("feesOf", token) == 0
    assert escrow.bond_of(env.supplier.address, token) == (bond, 0)
    conserved(env)


@pytest.mark.parametrize(
    ("buyer_bps", "slash_bps"),
    [(0, 0), (0, 10_000), (2_500, 5_000), (5_000, 0), (9_999, 1), (10_000, 10_000)],
)
@pytest.mark.parametrize("listing", LISTINGS)
def test_rule_scales_the_cut_as_it_scales_the_payment(
    env: Env, listing: str, buyer_bps: int, slash_bps: int
) -> None:
    escrow = env.escrow
    lid, token, _, _, bond = terms(env, listing)
    oid, order = env.disputed_order(lid, quantity=3, reseller=env.reseller.address)
    conserved(env, [(oid, order)])
    res = escrow.rule(env.arbiter, oid, order, buyer_bps=buyer_bps, slash_bps=slash_bps)
    buyer_amount = order.amount * buyer_bps // BPS
    slashed = order.bond * slash_bps // BPS
    gross = order.amount - buyer_amount
    to_supplier, fee, commission = split(order, gross)
    # The cut shrinks with the sellers' share: none of it when the buyer takes everything.
    assert commission == (order.reseller_cut * gross // order.amount) * (BPS - FEE_BPS) // BPS
    assert (commission == 0) is (buyer_bps == BPS)
    assert balances(env, token, env.buyer.address, env.supplier.address, env.reseller.address) == [
        buyer_amount + slashed,
        to_supplier,
        commission,
    ]
    assert escrow.call("feesOf", token) == fee
    assert escrow.bond_of(env.supplier.address, token) == (bond - slashed, 0)
    ev = res.event("DisputeRuled").args
    assert (ev["buyerAmount"], ev["supplierAmount"], ev["slashed"]) == (
        buyer_amount,
        to_supplier,
        slashed,
    )
    conserved(env)


def test_a_quarter_ruling_worked_example(env: Env) -> None:
    """USDC, 3 codes in the shop: 13.5 paid, a cut of 1.5. A ruling of 25% to the buyer leaves
    the sellers 10.125: fee 0.2025; cut 1.5 * 0.75 = 1.125, less 2% (0.0225) = 1.1025; supplier
    10.125 - 0.2025 - 1.1025 = 8.82, which is 9 (75% of its 12) less 2%."""
    oid, order = env.disputed_order(env.usdc_listing, quantity=3, reseller=env.reseller.address)
    env.escrow.rule(env.arbiter, oid, order, buyer_bps=2_500)
    assert split(order, 13_500_000 - 3_375_000) == (8_820_000, 202_500, 1_102_500)
    assert balances(
        env, env.usdc.address, env.buyer.address, env.supplier.address, env.reseller.address
    ) == [3_375_000, 8_820_000, 1_102_500]


@pytest.mark.parametrize("listing", LISTINGS)
def test_resolve_timed_out_halves_the_cut(env: Env, listing: str) -> None:
    escrow = env.escrow
    lid, token, _, rp, bond = terms(env, listing)
    oid, order = env.disputed_order(lid, quantity=3, reseller=env.reseller.address)
    env.chain.travel_to(order.deadline + 1)
    escrow.resolve_timed_out(env.outsider, oid, order)
    half = order.amount - order.amount // 2
    to_supplier, fee, commission = split(order, half)
    assert commission == order.reseller_cut // 2 * (BPS - FEE_BPS) // BPS
    assert to_supplier == 3 * rp // 2 * (BPS - FEE_BPS) // BPS  # half its price, less 2%
    assert balances(env, token, env.buyer.address, env.supplier.address, env.reseller.address) == [
        order.amount // 2,
        to_supplier,
        commission,
    ]
    assert escrow.call("feesOf", token) == fee
    assert escrow.bond_of(env.supplier.address, token) == (bond, 0)
    conserved(env)


def test_prove_bad_code_gives_the_buyer_everything_and_the_reseller_nothing(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    lid, _ = escrow.create_listing(supplier, sku=env.world.sku, unit_price=ETH_PRICE)
    stock = commit_stock(env, lid, 4)
    escrow.set_reseller_price(supplier, lid, ETH_RESELLER_PRICE)
    escrow.set_shop_price(env.reseller, lid, ETH_SHOP_PRICE)
    oid, order = env.buy(lid, quantity=2, reseller=env.reseller.address)
    assert order.reseller_cut == 2 * (ETH_SHOP_PRICE - ETH_RESELLER_PRICE)
    order, proof = bad_code_proof(env, oid, order, stock)
    free_before = escrow.bond_of(supplier.address)[0]
    res = escrow._send(env.buyer, "proveBadCode", oid, order.as_tuple(), proof)
    ev = res.event("DisputeRuled").args
    assert (ev["buyerBps"], ev["slashBps"], ev["supplierAmount"]) == (BPS, BPS, 0)
    assert balances(env, ETH, env.buyer.address, supplier.address, env.reseller.address) == [
        order.amount + order.bond,
        0,
        0,
    ]
    assert escrow.call("feesOf", ETH) == 0
    assert escrow.bond_of(supplier.address) == (free_before, 0)  # the whole bond went to the buyer
    conserved(env)


# ---------------------------------------------------------------- terms fixed at purchase


def test_the_split_is_fixed_when_the_buyer_pays(env: Env) -> None:
    """Neither the supplier nor the reseller can move a paid order's split: raising or closing
    the reseller price and re-pricing the shop change only later orders."""
    escrow, supplier, reseller, lid = env.escrow, env.supplier, env.reseller, env.eth_listing
    confirmed = env.delivered_order(quantity=2, reseller=reseller.address)
    ruled = env.disputed_order(buyer=env.world.buyers[1], quantity=3, reseller=reseller.address)
    # The supplier takes the whole shop price for itself, then closes the listing to resellers;
    # the reseller re-prices its shop.
    escrow.set_reseller_price(supplier, lid, ETH_SHOP_PRICE)
    escrow.set_shop_price(reseller, lid, ETH_SHOP_PRICE + 1)
    escrow.set_reseller_price(supplier, lid, 0)
    for oid, order in (confirmed, ruled):
        assert escrow.order_matches(oid, order)
        assert order.reseller_cut == order.quantity * (ETH_SHOP_PRICE - ETH_RESELLER_PRICE)
    escrow.confirm(env.buyer, *confirmed)
    escrow.rule(env.arbiter, *ruled, buyer_bps=1_000)
    first, second = split(confirmed[1]), split(ruled[1], ruled[1].amount * 9 // 10)
    assert escrow.balance_of(reseller.address) == first[2] + second[2] > 0
    assert escrow.balance_of(supplier.address) == first[0] + second[0]
    assert escrow.call("feesOf", ETH) == first[1] + second[1]
    conserved(env)


# ---------------------------------------------------------------- the self-referral rule


def test_a_buyer_in_its_own_shop_pays_the_reseller_price_plus_the_fee_on_its_margin(
    env: Env,
) -> None:
    """The self-referral rule (docs/PROTOCOL.md, "Resellers"): a buyer buying in its own shop
    pays the shop's price and gets its margin back less the fee on it, so it pays the reseller
    price plus the platform's fee on the margin: no less than any buyer of a reseller that sells
    at the reseller price. The supplier is credited exactly what the same sale in an unrelated
    reseller's shop credits it: its reseller price less the fee on it."""
    escrow, token, lid = env.escrow, env.usdc.address, env.usdc_listing
    me, other = env.buyer, env.world.buyers[1]
    escrow.set_shop_price(me, lid, USDC_SHOP_PRICE)
    supplier_credits = []
    wallet = env.held(token, me.address)
    for buyer, shop in ((me, me), (other, env.reseller)):
        before = escrow.balance_of(env.supplier.address, token)
        oid, order = env.delivered_order(lid, buyer=buyer, quantity=3, reseller=shop.address)
        escrow.confirm(buyer, oid, order)
        supplier_credits.append(escrow.balance_of(env.supplier.address, token) - before)
    escrow.withdraw(me, token)
    # 3 at 4.5 = 13.5 paid; the 1.5 margin comes back less 2% (0.03): 12.03 net, the reseller
    # price of 3 (12) and 0.03 of fee on the margin.
    net = wallet - env.held(token, me.address)
    cut = 3 * (USDC_SHOP_PRICE - USDC_RESELLER_PRICE)
    assert net == 3 * USDC_RESELLER_PRICE + cut * FEE_BPS // BPS == 12_030_000
    # The supplier's credit is the same through its buyer's own shop as through another's:
    # 12 USDC less 2%.
    assert supplier_credits == [11_760_000, 11_760_000]
    assert supplier_credits[0] == 3 * USDC_RESELLER_PRICE * (BPS - FEE_BPS) // BPS
    conserved(env)


def test_a_supplier_in_its_own_shop_gets_what_a_plain_sale_at_that_price_gets(env: Env) -> None:
    """The supplier may keep a shop too: through it, it is credited its part and the commission,
    the whole payment less the fee, as if the listing were priced at the shop's price."""
    escrow, token, lid, supplier = env.escrow, env.usdc.address, env.usdc_listing, env.supplier
    escrow.set_shop_price(supplier, lid, USDC_SHOP_PRICE)
    oid, order = env.delivered_order(lid, quantity=3, reseller=supplier.address)
    assert (order.supplier, order.reseller) == (supplier.address, supplier.address)
    escrow.confirm(env.buyer, oid, order)
    amount = 3 * USDC_SHOP_PRICE
    assert escrow.balance_of(supplier.address, token) == amount - amount * FEE_BPS // BPS
    assert escrow.balance_of(supplier.address, token) == 13_230_000  # 13.5 less 2%
    conserved(env)


# ---------------------------------------------------------------- maxUnitPrice


def test_max_unit_price_bounds_the_shop_price_not_the_listing_price(env: Env) -> None:
    escrow, reseller = env.escrow, env.reseller.address
    eth, usdc = env.eth_listing, env.usdc_listing

    def buy(
        lid: int, max_price: int, value: int, via: str = reseller
    ) -> tuple[int, Order, TxResult]:
        return escrow.buy(
            env.buyer,
            lid,
            1,
            max_unit_price=max_price,
            buyer_pubkey=PUBKEY,
            reseller=via,
            value=value,
        )

    # The ETH shop sells above the listing: the listing's price is not enough of a bound.
    for max_price in (ETH_PRICE, ETH_SHOP_PRICE - 1):
        assert_reverts(
            env,
            lambda max_price=max_price: buy(eth, max_price, ETH_SHOP_PRICE),  # type: ignore[misc]
            "EscrowPriceAboveMax",
            [ETH_SHOP_PRICE, max_price],
        )
    _, order, _ = buy(eth, ETH_SHOP_PRICE, ETH_SHOP_PRICE)
    assert order.amount == ETH_SHOP_PRICE
    # The USDC shop sells below the listing: its price is bound enough there, and not outside.
    _, order, _ = buy(usdc, USDC_SHOP_PRICE, 0)
    assert order.amount == USDC_SHOP_PRICE
    assert_reverts(
        env,
        lambda: buy(usdc, USDC_SHOP_PRICE, 0, via=ETH),
        "EscrowPriceAboveMax",
        [USDC_PRICE, USDC_SHOP_PRICE],
    )
    # A shop re-priced while the buyer's transaction is in flight: refused, not overcharged.
    escrow.set_shop_price(env.reseller, usdc, USDC_SHOP_PRICE + 1)
    assert_reverts(
        env,
        lambda: buy(usdc, USDC_SHOP_PRICE, 0),
        "EscrowPriceAboveMax",
        [USDC_SHOP_PRICE + 1, USDC_SHOP_PRICE],
    )


# ---------------------------------------------------------------- named errors


@pytest.mark.parametrize("who", ["outsider", "reseller", "admin", "buyer", "second_supplier"])
def test_only_the_listings_supplier_sets_its_reseller_price(env: Env, who: str) -> None:
    account: LocalAccount
    if who == "second_supplier":
        account, _ = env.add_supplier()
    else:
        account = {
            "outsider": env.outsider,
            "reseller": env.reseller,
            "admin": env.admin,
            "buyer": env.buyer,
        }[who]
    for price in (ETH_PRICE, 0):
        assert_reverts(
            env,
            lambda price=price: env.escrow.set_reseller_price(account, env.eth_listing, price),  # type: ignore[misc]
            "EscrowWrongCaller",
            [account.address],
        )


def test_reseller_and_shop_prices_of_an_unknown_listing_revert(env: Env) -> None:
    escrow, unknown = env.escrow, 99
    assert_reverts(
        env,
        lambda: escrow.set_reseller_price(env.supplier, unknown, ETH_PRICE),
        "EscrowUnknownListing",
        [unknown],
    )
    for price in (ETH_PRICE, 0):
        assert_reverts(
            env,
            lambda price=price: escrow.set_shop_price(env.reseller, unknown, price),  # type: ignore[misc]
            "EscrowUnknownListing",
            [unknown],
        )


def test_shop_prices_need_an_open_listing_and_at_least_the_reseller_price(env: Env) -> None:
    escrow, supplier, shop = env.escrow, env.supplier, env.outsider
    closed, _ = escrow.create_listing(supplier, sku=env.world.sku, unit_price=ETH_PRICE)
    assert_reverts(
        env,
        lambda: escrow.set_shop_price(shop, closed, ETH_PRICE),
        "EscrowNotDistributable",
        [closed],
    )
    lid = env.eth_listing
    for price in (1, ETH_RESELLER_PRICE - 1):
        assert_reverts(
            env,
            lambda price=price: escrow.set_shop_price(shop, lid, price),  # type: ignore[misc]
            "EscrowBelowResellerPrice",
            [lid, price, ETH_RESELLER_PRICE],
        )
    # At the reseller price exactly, and below the listing's own price, is a shop's choice.
    res = escrow.set_shop_price(shop, lid, ETH_RESELLER_PRICE)
    ev = res.event("ShopPriceSet").args
    assert (ev["reseller"].lower(), ev["listingId"], ev["price"]) == (
        shop.address.lower(),
        lid,
        ETH_RESELLER_PRICE,
    )
    assert escrow.call("shopPrice", shop.address, lid) == ETH_RESELLER_PRICE
    # Taking a listing out of a shop is always allowed, even once the listing is closed.
    escrow.set_reseller_price(supplier, lid, 0)
    res = escrow.set_shop_price(shop, lid, 0)
    assert res.event("ShopPriceSet").args["price"] == 0
    assert escrow.call("shopPrice", shop.address, lid) == 0
    escrow.set_shop_price(shop, closed, 0)  # and from a shop that never had it


def test_buying_in_a_shop_that_does_not_sell_the_listing_reverts(env: Env) -> None:
    escrow, reseller, lid = env.escrow, env.reseller, env.eth_listing
    for stranger in (env.outsider.address, env.buyer.address, env.supplier.address):
        assert_reverts(
            env,
            lambda stranger=stranger: env.buy(reseller=stranger),  # type: ignore[misc]
            "EscrowNotInShop",
            [stranger, lid],
        )
    # The reseller's shop sells the ETH listing; taken out of it, it is not sold there either.
    escrow.set_shop_price(reseller, lid, 0)

    def buy() -> tuple[int, Order, TxResult]:
        return escrow.buy(
            env.buyer,
            lid,
            1,
            max_unit_price=ETH_SHOP_PRICE,
            buyer_pubkey=PUBKEY,
            reseller=reseller.address,
            value=ETH_SHOP_PRICE,
        )

    assert_reverts(env, buy, "EscrowNotInShop", [reseller.address, lid])


def test_a_shop_price_the_supplier_closed_or_overtook_since_reverts(env: Env) -> None:
    """The shop's price stays set, but the supplier closed the listing to resellers since, or
    raised its reseller price above the shop's: a purchase in the shop is refused until the
    supplier's terms allow it again."""
    escrow, supplier, reseller, lid = env.escrow, env.supplier, env.reseller, env.eth_listing
    escrow.set_reseller_price(supplier, lid, 0)
    assert escrow.call("shopPrice", reseller.address, lid) == ETH_SHOP_PRICE
    assert_reverts(env, lambda: env.buy(reseller=reseller.address), "EscrowNotDistributable", [lid])
    escrow.set_reseller_price(supplier, lid, ETH_SHOP_PRICE + 1)
    assert_reverts(
        env,
        lambda: env.buy(reseller=reseller.address),
        "EscrowBelowResellerPrice",
        [lid, ETH_SHOP_PRICE, ETH_SHOP_PRICE + 1],
    )
    # At the shop's price exactly, the shop sells again, with no cut left for the reseller.
    res = escrow.set_reseller_price(supplier, lid, ETH_SHOP_PRICE)
    assert res.event("ResellerPriceSet").args["resellerPrice"] == ETH_SHOP_PRICE
    _, order = env.buy(reseller=reseller.address)
    assert (order.amount, order.reseller_cut) == (ETH_SHOP_PRICE, 0)


def test_paying_the_listing_price_in_a_shop_reverts_wrong_value(env: Env) -> None:
    lid = env.eth_listing
    assert_reverts(
        env,
        lambda: env.escrow.buy(
            env.buyer,
            lid,
            2,
            max_unit_price=ETH_SHOP_PRICE,
            buyer_pubkey=PUBKEY,
            reseller=env.reseller.address,
            value=2 * ETH_PRICE,
        ),
        "EscrowWrongValue",
        [2 * ETH_PRICE, 2 * ETH_SHOP_PRICE],
    )


# ---------------------------------------------------------------- arbiters and tokens


def test_an_arbiter_that_resells_cannot_rule_on_its_own_sales(env: Env) -> None:
    """An arbiter may keep a shop; it is then a party to its shop's orders (EscrowArbiterIsParty),
    another arbiter rules on them, and the arbiter is paid its commission like any reseller."""
    escrow, arbiter, token, lid = env.escrow, env.arbiter, env.usdc.address, env.usdc_listing
    escrow.set_shop_price(arbiter, lid, 5 * USDC)
    oid, order = env.disputed_order(lid, quantity=2, reseller=arbiter.address)
    assert order.reseller_cut == 2 * (5 * USDC - USDC_RESELLER_PRICE)
    assert_reverts(
        env,
        lambda: escrow.rule(arbiter, oid, order, buyer_bps=0),
        "EscrowArbiterIsParty",
        [arbiter.address],
        orders=[oid],
    )
    escrow.rule(env.admin, oid, order, buyer_bps=2_500, slash_bps=1_000)
    to_supplier, _, commission = split(order, order.amount - order.amount // 4)
    # 10 USDC paid, a cut of 2: the sellers keep 7.5; the cut 1.5 less 2% is 1.47.
    assert (commission, to_supplier) == (1_470_000, 7_500_000 - 150_000 - 1_470_000)
    assert balances(env, token, arbiter.address, env.supplier.address) == [
        commission,
        to_supplier,
    ]
    conserved(env)  # the arbiter is among the environment's accounts
    before = env.held(token, arbiter.address)
    escrow.withdraw(arbiter, token)
    assert env.held(token, arbiter.address) == before + commission
    conserved(env)


def test_erc20_sale_in_a_shop_moves_exact_token_units(env: Env) -> None:
    """The TestToken path end to end: the buyer's wallet pays the shop's price, and after every
    withdrawal the supplier, the reseller and the platform hold exactly their parts and the
    escrow nothing but the supplier's bond."""
    escrow, token, usdc = env.escrow, env.usdc.address, env.usdc_listing
    wallets = {a: env.held(token, a) for a in (env.buyer.address, env.supplier.address)}
    oid, order = env.buy(usdc, quantity=5, reseller=env.reseller.address)
    assert env.held(token, env.buyer.address) == wallets[env.buyer.address] - 5 * USDC_SHOP_PRICE
    assert env.held(token) == USDC_BOND + 5 * USDC_SHOP_PRICE
    escrow.confirm(env.buyer, oid, env.deliver(oid, order))
    to_supplier, fee, commission = split(order)
    # 22.5 paid: fee 0.45; the 2.5 cut less 0.05; the supplier 20 less 0.4.
    assert (to_supplier, fee, commission) == (19_600_000, 450_000, 2_450_000)
    escrow.withdraw(env.supplier, token)
    escrow.withdraw(env.reseller, token)
    env.withdraw_fees(token, env.world.fee_recipient.address)
    assert env.held(token, env.supplier.address) == wallets[env.supplier.address] + to_supplier
    assert env.held(token, env.reseller.address) == commission
    assert env.held(token, env.world.fee_recipient.address) == fee
    assert env.held(token) == USDC_BOND
    conserved(env)


def test_shop_orders_hash_their_reseller_and_cut(env: Env) -> None:
    """A shop order's reseller and cut are in its stored hash: a forged cut or reseller is an
    unknown order, so no party can claim another split."""
    oid, order = env.delivered_order(env.usdc_listing, reseller=env.reseller.address)
    for forged in (
        order.with_changes(reseller_cut=order.reseller_cut * 2),
        order.with_changes(reseller_cut=0),
        order.with_changes(reseller=env.outsider.address),
    ):
        assert_reverts(
            env,
            lambda forged=forged: env.escrow.confirm(env.buyer, oid, forged),  # type: ignore[misc]
            "EscrowUnknownOrder",
            [oid],
            orders=[oid],
            mined=False,
        )
    assert env.escrow.order_matches(oid, order)
