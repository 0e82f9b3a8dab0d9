"""Issue 15: resellers (分站) in the browser, in Chinese and in English.

The development supplier opens a USDT listing to resellers on its dashboard (reseller price 13
USDT). Then, in each language, a new reseller with nothing but a wallet puts the listing in its
shop at 15.5 USDT on its page (a price under 13 is refused before anything is signed) and names
its shop; a buyer opens the shop's named link, buys two codes at the shop's price, opens them,
and confirms; the reseller's page shows the margin the escrow credited it and withdraws it, and
the supplier's credit is what its reseller price promised, less the fee, to the unit.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.sync_api import expect
from web_support import (
    USDT,
    WebStack,
    connect_dev_wallet,
    delivered_order,
    new_page,
    sign_in,
)

from contracts.order_rules import Terms, complete

if TYPE_CHECKING:
    from playwright.sync_api import Browser

RESELLER_PRICE = 13 * USDT
SHOP_PRICE = 15_500_000  # 15.5 USDT
QUANTITY = 2

#: What each language's pages say at the steps the test checks.
TEXT = {
    "en": {
        "below": "is below the reseller price 13 USDT",
        "listed": "is in your shop at 15.5 USDT",
        "shop": "You pay the shop's price",
        "withdrew": "Withdrew",
        "badName": "Use 3 to 32 lowercase letters",
    },
    "zh-CN": {
        "below": "低于代理价 13 USDT",
        "listed": "已在您的分站上架，售价 15.5 USDT",
        "shop": "您支付分站的售价",
        "withdrew": "已提现",
        "badName": "请使用 3 到 32 个小写字母",
    },
}


def usdt_text(amount: int) -> str:
    """An amount of the development USDT as the web shows it (fmtAmount: no trailing zeros)."""
    value = Decimal(amount) / USDT
    return f"{value.normalize():f} USDT"


@pytest.fixture(scope="module")
def listing(stack: WebStack, browser: Browser) -> int:
    """A USDT listing (15 USDT, 4 codes) the supplier opened to resellers at 13 USDT on its
    dashboard."""
    lid = stack.usdt_listing(15 * USDT, 2 * QUANTITY)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, stack.dev.supplier)
    sign_in(page)
    row = page.locator(f'[data-test="listing-row"][data-listing="{lid}"]')
    control = row.get_by_test_id("reseller-control")
    expect(control).to_contain_text("Resellers: closed")
    control.locator("summary").click()
    row.get_by_test_id("reseller-price").fill("13")
    row.get_by_test_id("reseller-set").click()
    expect(page.get_by_test_id("withdraw-message")).to_contain_text(
        f"Listing #{lid} is open to resellers at 13 USDT a code."
    )
    assert stack.escrow.call("resellerPrice", lid) == RESELLER_PRICE
    # The dashboard redraws from the mirror: the row then says so.
    expect(row.get_by_test_id("reseller-control")).to_contain_text("Resellers: open at 13 USDT")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
    return lid


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_buyer_buys_in_a_resellers_shop_and_every_party_is_paid_its_part(
    stack: WebStack, browser: Browser, listing: int, locale: str
) -> None:
    text = TEXT[locale]
    escrow, token = stack.escrow, stack.usdt()

    # The reseller: a wallet, nothing else.
    reseller = stack.new_account(ether=5)
    context, page = new_page(browser, locale=locale)
    page.goto(f"{stack.url}/#/reseller")
    connect_dev_wallet(page, reseller)
    row = page.locator(f'[data-test="resell-row"][data-listing="{listing}"]')
    expect(row.get_by_test_id("resell-floor")).to_have_text("13 USDT")
    nonce = stack.chain.w3.eth.get_transaction_count(reseller.address)
    row.get_by_test_id("resell-price").fill("12")
    row.get_by_test_id("resell-set").click()
    expect(row.get_by_test_id("resell-message")).to_contain_text(text["below"])
    assert stack.chain.w3.eth.get_transaction_count(reseller.address) == nonce
    row.get_by_test_id("resell-price").fill("15.5")
    row.get_by_test_id("resell-set").click()
    expect(page.get_by_test_id("resell-outcome")).to_contain_text(text["listed"])
    assert escrow.call("shopPrice", reseller.address, listing) == SHOP_PRICE
    link = page.get_by_test_id("shop-link").get_attribute("href")
    assert link is not None and link.endswith(f"#/s/{reseller.address}")
    # A name makes the link short: a bad one is refused in the page, a good one claimed.
    name = f"shop-{locale.lower()}"
    page.get_by_test_id("shop-name").fill("Bad Name")
    page.get_by_test_id("shop-name-claim").click()
    expect(page.get_by_test_id("shop-name-message")).to_contain_text(text["badName"])
    page.get_by_test_id("shop-name").fill(name)
    page.get_by_test_id("shop-name-claim").click()
    expect(page.get_by_test_id("resell-outcome")).to_contain_text(name)
    expect(page.get_by_test_id("shop-link")).to_have_attribute("href", re.compile(f"#/s/{name}$"))
    link = page.get_by_test_id("shop-link").get_attribute("href")
    assert link is not None
    assert page.errors == []  # type: ignore[attr-defined]

    # The buyer opens the shop's link and pays the shop's price.
    buyer = stack.new_account(ether=5)
    escrow.tx.send(stack.dev.admin, token.functions.mint(buyer.address, 100 * USDT))
    shopper, store = new_page(browser, locale=locale)
    store.goto(link)
    expect(store.get_by_test_id("shop-title")).to_contain_text(name)
    item = store.locator(f'[data-test="shop-item"][data-listing="{listing}"]')
    expect(item.get_by_test_id("shop-price")).to_have_text("15.5 USDT")
    item.get_by_test_id("shop-buy").click()
    expect(store).to_have_url(re.compile(rf"#/buy/{listing}\?ref={reseller.address}$"))
    expect(store.get_by_test_id("unit-price")).to_have_text("15.5 USDT")
    expect(store.get_by_test_id("shop")).to_contain_text(text["shop"])
    connect_dev_wallet(store, buyer)
    store.get_by_test_id("quantity").fill(str(QUANTITY))
    expect(store.get_by_test_id("total")).to_have_text("31 USDT")
    store.get_by_test_id("pay").click()
    expect(store).to_have_url(re.compile(r"#/order/\d+$"))
    oid = int(store.url.rsplit("/", 1)[1])
    order = stack.wait_until(f"order {oid} delivered", lambda: delivered_order(stack, oid, buyer))
    # Every party's part is fixed in the order: 2 x (15.5 - 13) = 5 USDT is the shop's cut.
    assert (order.reseller, order.amount) == (reseller.address, QUANTITY * SHOP_PRICE)
    assert order.reseller_cut == QUANTITY * (SHOP_PRICE - RESELLER_PRICE)
    store.get_by_test_id("open-codes").click()
    expect(store.get_by_test_id("code-text")).to_have_text(stack.codes_of_order(oid, QUANTITY))
    assert store.errors == []  # type: ignore[attr-defined]
    shopper.close()

    # Confirmed: the supplier, the shop and the platform are credited their parts.
    paid = complete(Terms.of(order))
    supplier = stack.dev.supplier.address
    before = escrow.balance_of(supplier, token.address)
    escrow.tx.reset_nonce(buyer.address)
    escrow.confirm(buyer, oid, order)
    supplier_gain = escrow.balance_of(supplier, token.address) - before
    # The supplier receives its reseller price a code, less its share of the fee, whatever the
    # shop charged: exactly what a sale at 13 USDT would have paid it.
    at_reseller_price = complete(Terms(QUANTITY * RESELLER_PRICE, 0, order.fee_bps, 0))
    assert supplier_gain == paid.to_supplier
    assert abs(paid.to_supplier - at_reseller_price.to_supplier) <= 1
    assert escrow.balance_of(reseller.address, token.address) == paid.commission

    # The reseller sees its margin and withdraws it. The page reads the sale's credit from the
    # mirror once, as it loads: reload only after the indexer has recorded the confirmation.
    stack.wait_until(
        f"the mirror to credit order {oid} to the shop",
        lambda: any(
            int(x["order_id"]) == oid and x.get("commission") is not None
            for x in httpx.get(f"{stack.url}/shops/{reseller.address}/sales", timeout=30).json()
        ),
    )
    page.reload()
    balance = page.locator(f'[data-test="resell-balance"][data-token="{token.address.lower()}"]')
    expect(balance.get_by_test_id("resell-amount")).to_have_text(usdt_text(paid.commission))
    sale = page.locator(f'[data-test="resell-sale"][data-order="{oid}"]')
    expect(sale.get_by_test_id("resell-credited")).to_have_text(usdt_text(paid.commission))
    balance.get_by_test_id("resell-withdraw").click()
    expect(page.get_by_test_id("resell-outcome")).to_contain_text(text["withdrew"])
    assert token.functions.balanceOf(reseller.address).call() == paid.commission
    assert escrow.balance_of(reseller.address, token.address) == 0
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_shop_the_escrow_would_refuse_says_so_before_anything_is_paid(
    stack: WebStack, browser: Browser, listing: int
) -> None:
    """The supplier raised its reseller price above a shop's price (or closed the listing to
    resellers): the shop's buy page says why it cannot sell and offers the supplier's price;
    Pay stays off, so no wallet is asked for a purchase the escrow would refuse."""
    escrow, supplier = stack.escrow, stack.dev.supplier
    shop = stack.new_account(ether=1)
    escrow.set_shop_price(shop, listing, 14 * USDT)
    context, page = new_page(browser, locale="en")
    try:
        for floor, said in (
            (14_500_000, "is below what the supplier now asks of resellers"),
            (0, "is not open to resellers (any more)"),
        ):
            escrow.set_reseller_price(supplier, listing, floor)
            page.goto(f"{stack.url}/#/buy/{listing}?ref={shop.address}")
            expect(page.get_by_test_id("buy-message")).to_contain_text(said)
            expect(page.get_by_test_id("pay")).to_be_disabled()
            page.get_by_test_id("buy-direct").click()
            expect(page).to_have_url(re.compile(rf"#/buy/{listing}$"))
            # The supplier's own offer (sold out by now: the shop's buyers took its 4 codes).
            expect(page.get_by_test_id("unit-price")).to_have_text("15 USDT")
            expect(page.get_by_test_id("buy-message")).not_to_contain_text(said)
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        escrow.set_reseller_price(supplier, listing, RESELLER_PRICE)
        context.close()
