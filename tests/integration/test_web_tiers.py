"""Issue 15: volume tiers (批发价) in the browser, in Chinese and in English.

In each language the development supplier gives a 10 USDT listing two tiers on its dashboard
(3 codes or more: 5% off; 10 or more: 10% off), after a list the escrow would refuse is refused in
the page with nothing sent. The store and the buy page show the price table; a buyer who asks for
3 codes sees the unit price and the total follow the quantity and pays exactly 3 x 9.5 USDT, as
the order fixed on-chain says. A reseller's shop shows the same tiers off its own price.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest
from axe_support import accessibility_problems
from playwright.sync_api import expect
from web_support import (
    OVERFLOW,
    TIMEOUT_MS,
    USDT,
    WebStack,
    connect_dev_wallet,
    delivered_order,
    new_page,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PRICE = 10 * USDT
TIERS = [(3, 500), (10, 1000)]
API_TIERS = [{"min_quantity": q, "discount_bps": d} for q, d in TIERS]
QUANTITY = 3
UNIT = 9_500_000  # 10 USDT less 5%
SHOP_PRICE = 12 * USDT

#: What each language's pages say at the steps the test checks.
TEXT = {
    "en": {
        "none": "Volume tiers: none",
        "offOrder": "Tier 2: each tier must give a larger discount than the one before.",
        "min": "Tier 1: the quantity must be a whole number of at least 2.",
        "result": "→ 9.5 USDT a code",
        "done": "now has volume tiers: 3+ codes −5% · 10+ codes −10%.",
        "summary": "Volume tiers: 3+ codes −5% · 10+ codes −10%",
        "table": ["1–2: 10 USDT", "3–9: 9.5 USDT (−5%)", "10+: 9 USDT (−10%)"],
        "shopTable": ["1–2: 12 USDT", "3–9: 11.4 USDT (−5%)", "10+: 10.8 USDT (−10%)"],
    },
    "zh-CN": {
        "none": "批发价：未设置",
        "offOrder": "第 2 档：每一档的折扣必须大于上一档。",
        "min": "第 1 档：数量必须是不小于 2 的整数。",
        "result": "→ 每件 9.5 USDT",
        "done": "已设置批发价：满 3 件优惠 5%；满 10 件优惠 10%。",
        "summary": "批发价：满 3 件优惠 5%；满 10 件优惠 10%",
        "table": ["1–2 件：10 USDT", "3–9 件：9.5 USDT（优惠 5%）", "满 10 件：9 USDT（优惠 10%）"],
        "shopTable": [
            "1–2 件：12 USDT",
            "3–9 件：11.4 USDT（优惠 5%）",
            "满 10 件：10.8 USDT（优惠 10%）",
        ],
    },
}


def _in_shop(stack: WebStack, reseller: str, listing: int) -> bool:
    """Whether the mirror lists `listing` in `reseller`'s shop."""
    items = httpx.get(f"{stack.url}/shops/{reseller}", timeout=30).json()
    return any(int(item["listing_id"]) == listing for item in items)


def _set_tiers_on_the_dashboard(stack: WebStack, browser: Browser, locale: str, lid: int) -> None:
    """The supplier's dashboard: a list the escrow would refuse is refused in the page (nothing
    sent), then the tiers are saved with setTiers."""
    text = TEXT[locale]
    supplier = stack.dev.supplier
    context, page = new_page(browser, locale=locale)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, supplier)
    sign_in(page)
    row = page.locator(f'[data-test="listing-row"][data-listing="{lid}"]')
    control = row.get_by_test_id("tiers-control")
    expect(control.locator("summary")).to_have_text(text["none"])
    control.locator("summary").click()
    mins, offs = control.get_by_test_id("tier-min"), control.get_by_test_id("tier-off")
    expect(mins).to_have_count(3)
    nonce = stack.chain.w3.eth.get_transaction_count(supplier.address)
    # Discounts must grow with the quantity: 10% from 3 codes, then 5% from 10, is refused.
    mins.nth(0).fill("3")
    offs.nth(0).fill("10")
    mins.nth(1).fill("10")
    offs.nth(1).fill("5")
    control.get_by_test_id("tiers-save").click()
    expect(row.get_by_role("alert")).to_contain_text(text["offOrder"])
    # A break of 1 code is no break.
    mins.nth(0).fill("1")
    offs.nth(0).fill("5")
    expect(control.get_by_test_id("tier-result").nth(0)).to_have_text(text["result"])
    control.get_by_test_id("tiers-save").click()
    expect(row.get_by_role("alert")).to_contain_text(text["min"])
    assert stack.chain.w3.eth.get_transaction_count(supplier.address) == nonce
    assert stack.escrow.call("tiers", lid) == 0

    mins.nth(0).fill("3")
    offs.nth(1).fill("10")
    control.get_by_test_id("tiers-save").click()
    expect(page.get_by_test_id("withdraw-message")).to_contain_text(text["done"])
    assert stack.escrow.storage.tiers(lid) == TIERS
    # The row redraws with the tiers saved (from the mirror, or the chain without it).
    expect(control.locator("summary")).to_have_text(text["summary"])
    expect(control.get_by_test_id("supplier-tiers").get_by_test_id("tier")).to_have_text(
        text["table"]
    )
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_supplier_sets_tiers_and_a_buyer_pays_the_tier_price(
    stack: WebStack, browser: Browser, locale: str
) -> None:
    text = TEXT[locale]
    escrow, token = stack.escrow, stack.usdt()
    lid = stack.usdt_listing(PRICE, 2 * QUANTITY)
    _set_tiers_on_the_dashboard(stack, browser, locale, lid)
    # The catalog carries the tiers once the mirror has them (the pages read the chain without).
    stack.wait_until(
        f"the catalog to show listing {lid}'s tiers",
        lambda: stack.catalog_listing(lid).get("tiers", API_TIERS) == API_TIERS,
    )

    # The store shows the price table on the offer.
    buyer = stack.new_account(ether=5)
    escrow.tx.send(stack.dev.admin, token.functions.mint(buyer.address, 100 * USDT))
    context, page = new_page(browser, locale=locale)
    page.goto(f"{stack.url}/#/")
    offer = page.locator(f'[data-test="offer"][data-listing="{lid}"]')
    expect(offer.get_by_test_id("offer-tiers").get_by_test_id("tier")).to_have_text(text["table"])

    # The buy page: the unit price and the total follow the quantity chosen.
    page.goto(f"{stack.url}/#/buy/{lid}")
    connect_dev_wallet(page, buyer)
    tiers = page.get_by_test_id("tier-prices").get_by_test_id("tier")
    expect(tiers).to_have_text(text["table"])
    expect(page.get_by_test_id("unit-price")).to_have_text("10 USDT")
    expect(tiers.nth(0)).to_have_attribute("aria-current", "true")
    page.get_by_test_id("quantity").fill(str(QUANTITY))
    expect(page.get_by_test_id("unit-price")).to_have_text("9.5 USDT")
    expect(page.get_by_test_id("total")).to_have_text("28.5 USDT")
    expect(tiers.nth(1)).to_have_attribute("aria-current", "true")
    expect(tiers.nth(0)).not_to_have_attribute("aria-current", "true")
    page.get_by_test_id("pay").click()
    expect(page).to_have_url(re.compile(r"#/order/\d+$"))
    oid = int(page.url.rsplit("/", 1)[1])
    order = stack.wait_until(f"order {oid} delivered", lambda: delivered_order(stack, oid, buyer))
    # The order the escrow keeps says 3 codes at 9.5 USDT, and that is what left the wallet.
    assert escrow.order_matches(oid, order)
    assert (order.quantity, order.amount) == (QUANTITY, QUANTITY * UNIT)
    assert token.functions.balanceOf(buyer.address).call() == 100 * USDT - QUANTITY * UNIT
    # The page asked for an allowance of the discounted amount, and the buy used all of it.
    assert token.functions.allowance(buyer.address, escrow.address).call() == 0
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()

    # A reseller's shop: the same tiers, off the shop's price.
    reseller = stack.new_account(ether=1)
    escrow.set_reseller_price(stack.dev.supplier, lid, 8 * USDT)
    escrow.set_shop_price(reseller, lid, SHOP_PRICE)
    stack.wait_until(f"the shop to list {lid}", lambda: _in_shop(stack, reseller.address, lid))
    context, page = new_page(browser, locale=locale)
    page.goto(f"{stack.url}/#/s/{reseller.address}")
    item = page.locator(f'[data-test="shop-item"][data-listing="{lid}"]')
    expect(item.get_by_test_id("shop-price")).to_have_text("12 USDT")
    expect(item.get_by_test_id("shop-tiers").get_by_test_id("tier")).to_have_text(text["shopTable"])
    item.get_by_test_id("shop-buy").click()
    expect(page).to_have_url(re.compile(rf"#/buy/{lid}\?ref={reseller.address}$"))
    expect(page.get_by_test_id("unit-price")).to_have_text("12 USDT")
    page.get_by_test_id("quantity").fill(str(QUANTITY))
    expect(page.get_by_test_id("unit-price")).to_have_text("11.4 USDT")
    expect(page.get_by_test_id("total")).to_have_text("34.2 USDT")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_in_the_chains_coin_the_payment_sent_is_the_tier_price(
    stack: WebStack, browser: Browser
) -> None:
    """A listing priced in the chain's coin: the escrow wants exactly the discounted amount with
    the buy, and the page sends it (a full-price value would be refused)."""
    escrow, dev = stack.escrow, stack.dev
    price = 10**16  # 0.01 ETH; 2 codes or more: 3.33% off, 0.009667 ETH a code
    lid, _ = escrow.create_listing(
        dev.supplier, sku=dev.sku, unit_price=price, bond_bps=1000, metadata_uri="kameng:dev/tiers"
    )
    stack.stock_listing(2, lid)
    escrow.set_tiers(dev.supplier, lid, [(2, 333)])
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser, locale="en")
    page.goto(f"{stack.url}/#/buy/{lid}")
    connect_dev_wallet(page, buyer)
    expect(page.get_by_test_id("tier-prices").get_by_test_id("tier")).to_have_text(
        ["1: 0.01 ETH", "2+: 0.009667 ETH (−3.33%)"]
    )
    page.get_by_test_id("quantity").fill("2")
    expect(page.get_by_test_id("unit-price")).to_have_text("0.009667 ETH")
    expect(page.get_by_test_id("total")).to_have_text("0.019334 ETH")
    page.get_by_test_id("pay").click()
    expect(page).to_have_url(re.compile(r"#/order/\d+$"))
    oid = int(page.url.rsplit("/", 1)[1])
    order = stack.wait_until(f"order {oid} delivered", lambda: delivered_order(stack, oid, buyer))
    assert escrow.order_matches(oid, order)
    assert order.amount == 2 * (price - price * 333 // 10_000)
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


PHONE_WIDTH = 360


def _fits(page: Page, name: str) -> None:
    """The page is no wider than the screen, and axe-core finds nothing serious in it."""
    expect(page.locator("#app")).not_to_have_attribute("aria-busy", "true")
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= PHONE_WIDTH, (
        f"the {name} page is {found['scroll']} px wide on a {PHONE_WIDTH} px screen; past the "
        "edge:\n" + "\n".join(found["out"])
    )
    assert accessibility_problems(page, name) == []


def test_the_tier_tables_and_the_tier_form_fit_a_360_pixel_phone(
    stack: WebStack, browser: Browser
) -> None:
    escrow, dev = stack.escrow, stack.dev
    lid = stack.usdt_listing(123_456_789 * USDT, 1)
    escrow.set_tiers(dev.supplier, lid, [(10, 125), (1_000, 2_550), (100_000, 9_999)])
    reseller = stack.new_account(ether=1)
    escrow.set_reseller_price(dev.supplier, lid, 100_000_000 * USDT)
    escrow.set_shop_price(reseller, lid, 123_456_789 * USDT + 654_321)
    stack.wait_until(f"the shop to list {lid}", lambda: _in_shop(stack, reseller.address, lid))
    context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 780})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto(f"{stack.url}/#/")
        offer = page.locator(f'[data-test="offer"][data-listing="{lid}"]')
        expect(offer.get_by_test_id("offer-tiers").get_by_test_id("tier")).to_have_count(4)
        _fits(page, "store")
        page.goto(f"{stack.url}/#/product/{stack.catalog_listing(lid)['sku']}")
        expect(page.get_by_test_id("compare-tiers").first).to_be_visible()
        _fits(page, "product")
        page.goto(f"{stack.url}/#/buy/{lid}")
        expect(page.get_by_test_id("tier-prices").get_by_test_id("tier")).to_have_count(4)
        _fits(page, "buy")
        page.goto(f"{stack.url}/#/s/{reseller.address}")
        expect(page.get_by_test_id("shop-tiers").get_by_test_id("tier")).to_have_count(4)
        _fits(page, "shop")
        page.goto(f"{stack.url}/#/supplier")
        connect_dev_wallet(page, dev.supplier)
        sign_in(page)
        control = page.locator(f'[data-test="listing-row"][data-listing="{lid}"]').get_by_test_id(
            "tiers-control"
        )
        control.locator("summary").click()
        expect(control.get_by_test_id("tier-result").nth(2)).not_to_be_empty()
        _fits(page, "supplier (tiers open)")
    finally:
        context.close()


def test_a_supplier_removes_its_tiers(stack: WebStack, browser: Browser) -> None:
    escrow, dev = stack.escrow, stack.dev
    lid = stack.usdt_listing(PRICE, 1)
    escrow.set_tiers(dev.supplier, lid, TIERS)
    context, page = new_page(browser, locale="en")
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, dev.supplier)
    sign_in(page)
    control = page.locator(f'[data-test="listing-row"][data-listing="{lid}"]').get_by_test_id(
        "tiers-control"
    )
    expect(control.locator("summary")).to_have_text(TEXT["en"]["summary"])
    control.locator("summary").click()
    # The form shows the tiers saved, ready to change.
    for i, (q, off) in enumerate([("3", "5"), ("10", "10"), ("", "")]):
        expect(control.get_by_test_id("tier-min").nth(i)).to_have_value(q)
        expect(control.get_by_test_id("tier-off").nth(i)).to_have_value(off)
    control.get_by_test_id("tiers-remove").click()
    expect(page.get_by_test_id("withdraw-message")).to_contain_text(
        f"Listing #{lid} has no volume tiers any more"
    )
    assert escrow.storage.tiers(lid) == []
    expect(control.locator("summary")).to_have_text(TEXT["en"]["none"])
    expect(control.get_by_test_id("tiers-remove")).to_have_count(0)
    page.goto(f"{stack.url}/#/buy/{lid}")
    expect(page.get_by_test_id("unit-price")).to_have_text("10 USDT")
    expect(page.get_by_test_id("tier-prices")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
